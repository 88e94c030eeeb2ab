"""PEP 3333: gsse builds the environ pywsgi and gunicorn build, byte for byte.

The same raw requests go to three real processes on free ports (``gsse
run``, a plain ``gevent.pywsgi`` server and gunicorn), each serving
:mod:`tests.apps.environ_dump`; every key of the three environs is
compared. Not compared, because each server defines them its own way
(PEP 3333 leaves them to the server): ``SERVER_SOFTWARE``; the objects
under ``wsgi.*`` (by type only: ``wsgi.input`` and ``wsgi.errors``, and
``wsgi.file_wrapper``, which pywsgi lacks); ``SERVER_NAME`` and
``SERVER_PORT`` (pywsgi and gsse name the listening address, gunicorn the
``Host`` header); ``REMOTE_PORT`` (a client's own port); ``RAW_URI``
and ``gunicorn.socket`` (gunicorn's own); ``gsse.*`` keys; and the flags
gunicorn sets differently (``wsgi.multithread``, ``wsgi.multiprocess``)
or lacks (``wsgi.input_terminated``, for which gsse follows pywsgi).
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Processes
from tests.procs import free_port
from tests.procs import processes

pytestmark = pytest.mark.timeout(120)

#: Keys each server sets its own way (see the module docstring).
SERVER_SPECIFIC = {
    "SERVER_SOFTWARE",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_PORT",
    "RAW_URI",
    "wsgi.errors",
    "wsgi.file_wrapper",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.input_terminated",
    "wsgi.input",
}
#: Keys only one of the other servers has: pywsgi's and gsse's CGI key,
#: gunicorn's 103 Early Hints callable.
NOT_IN_GUNICORN = {"GATEWAY_INTERFACE"}
GUNICORN_ONLY = {"wsgi.early_hints"}
#: (server, request id, key): where one server is wrong, gsse does what the
#: other does (so the key is still compared, with that one).
KNOWN_DIFFERENCES = {
    # pywsgi strips values with str.strip(), which on latin-1 text also eats
    # \x85 and \xa0, the last byte of many UTF-8 characters.
    ("pywsgi", "latin-1-headers", "HTTP_X_LATIN"),
    # gunicorn joins Cookie lines with ","; RFC 6265 §5.4 and pywsgi use "; ".
    ("gunicorn", "cookies", "HTTP_COOKIE"),
}

HOST = b"Host: example.test:8080\r\n"

#: (id, raw request). Every request closes its connection.
REQUESTS: list[tuple[str, bytes]] = [
    ("plain", b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"),
    (
        "query",
        b"GET /a/b?x=1&y=%20z&e= HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
    ),
    (
        "percent-path",
        b"GET /caf%C3%A9/a%2Fb/%41%7e/sp%20ace?q=%C3%A9 HTTP/1.1\r\n"
        + HOST
        + b"Connection: close\r\n\r\n",
    ),
    (
        "latin-1-headers",
        b"GET / HTTP/1.1\r\n"
        + HOST
        + b"X-Utf8: voil\xc3\xa0 \xe2\x82\xac\r\nX-Latin: \xe9\xa0\x85\r\n"
        + b"Connection: close\r\n\r\n",
    ),
    (
        "repeated-headers",
        b"GET / HTTP/1.1\r\n"
        + HOST
        + b"Accept: a/b\r\nAccept: c/d\r\nX-Many: 1\r\nX-Many: 2\r\n"
        + b"Connection: close\r\n\r\n",
    ),
    (
        "ows",
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Ows: \t spaced  value \t\r\n"
        b"X-Empty:\r\nConnection: close\r\n\r\n",
    ),
    (
        "post-content-length",
        b"POST /form HTTP/1.1\r\n"
        + HOST
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + b"Content-Length: 11\r\nConnection: close\r\n\r\na=1&b=%C3%A9",
    ),
    (
        "post-chunked",
        b"POST /upload HTTP/1.1\r\n"
        + HOST
        + b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ),
    (
        "http10",
        b"GET /old?x HTTP/1.0\r\nUser-Agent: curl/1\r\n\r\n",
    ),
    (
        "http10-keep-alive",
        b"GET /old HTTP/1.0\r\nConnection: keep-alive, close\r\n" + HOST + b"\r\n",
    ),
    (
        "head",
        b"HEAD /h HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
    ),
    (
        "cookies",
        b"GET / HTTP/1.1\r\n" + HOST + b"Cookie: a=1\r\nCookie: b=2\r\n"
        b"Connection: close\r\n\r\n",
    ),
    (
        "expect-continue",
        b"PUT /x HTTP/1.1\r\n"
        + HOST
        + b"Expect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    ),
]


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def environ_of(port: int, data: bytes) -> dict[str, Any]:
    reply = exchange(port, data)
    head, _, body = reply.rpartition(b"\r\n\r\n")
    assert b" 200 " in reply.split(b"\r\n", 1)[0] or head.startswith(b"HTTP/1.1 100"), (
        reply
    )
    if data.startswith(b"HEAD"):
        return {}
    dump: dict[str, Any] = json.loads(body)
    return dump


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    directory = tmp_path_factory.mktemp("pep3333")
    with processes(directory) as procs:
        yield start_servers(procs)


def start_servers(procs: Processes) -> dict[str, int]:
    gsse = procs.gsse("run", "tests.apps.environ_dump:app", "--port", "0")
    pywsgi_port, gunicorn_port = free_port(), free_port()
    pywsgi = procs.start(
        [sys.executable, "-m", "tests.apps.environ_dump", str(pywsgi_port)]
    )
    gunicorn = procs.start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{gunicorn_port}",
            "--workers",
            "1",
            "tests.apps.environ_dump:app",
        ]
    )
    return {
        "gsse": gsse.wait_ready(),
        "pywsgi": pywsgi.wait_port(pywsgi_port),
        "gunicorn": gunicorn.wait_port(gunicorn_port),
    }


def comparable(environ: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in environ.items()
        if key not in SERVER_SPECIFIC and not key.startswith(("gsse.", "gunicorn."))
    }


def known(server: str, request: str) -> set[str]:
    return {k for s, r, k in KNOWN_DIFFERENCES if (s, r) == (server, request)}


@pytest.mark.parametrize(("request_id", "data"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_the_environ_matches_pywsgi_and_gunicorn(
    ports: dict[str, int], request_id: str, data: bytes
) -> None:
    """Every key the three servers define the same way has the same value."""
    gsse = comparable(environ_of(ports["gsse"], data))
    if not gsse:
        return  # HEAD: no body to read the environ from
    pywsgi = comparable(environ_of(ports["pywsgi"], data))
    gunicorn = comparable(environ_of(ports["gunicorn"], data))
    skip = known("pywsgi", request_id)
    assert {k: v for k, v in gsse.items() if k not in skip} == {
        k: v for k, v in pywsgi.items() if k not in skip
    }
    skip = known("gunicorn", request_id) | NOT_IN_GUNICORN | GUNICORN_ONLY
    assert {k: v for k, v in gsse.items() if k not in skip} == {
        k: v for k, v in gunicorn.items() if k not in skip
    }
    for key in known("pywsgi", request_id) | known("gunicorn", request_id):
        assert key in gsse and (gsse[key] == pywsgi[key]) != (
            gsse[key] == gunicorn[key]
        )


def test_the_server_specific_keys_are_there(ports: dict[str, int]) -> None:
    """The keys left out of the comparison exist, with PEP 3333's types."""
    environ = environ_of(ports["gsse"], REQUESTS[0][1])
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.multithread"] is False
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.file_wrapper"] == "type"
    assert environ["SERVER_PORT"] == str(ports["gsse"])
    assert environ["REMOTE_PORT"].isdigit()
    assert environ["SERVER_SOFTWARE"].startswith("gsse/")


def test_the_file_wrapper_sends_a_file(tmp_path: Path) -> None:
    """``wsgi.file_wrapper`` is PEP 3333's: an iterable of the file's blocks."""
    from gsse.http.environ import base_environ

    path = tmp_path / "f"
    path.write_bytes(b"x" * 20000)
    wrapper = base_environ("", "", None, {})["wsgi.file_wrapper"]
    with open(path, "rb") as f:
        assert b"".join(wrapper(f, 8192)) == b"x" * 20000
