"""Framing holds whatever else the request says: upgrades, huge chunks, folds.

Each case is one request followed by ``GET /smuggled`` on a connection the
first request does not keep: nothing after the first request may run or
reach the app's body, and a client error is a ``4xx`` with no traceback.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from gsse import Server
from gsse.framing import FramingError
from gsse.framing import parse_field_lines
from tests.helpers import wait_until
from tests.reliability.support import header_of
from tests.reliability.support import read_all
from tests.reliability.support import status_of
from tests.reliability.test_framing import SMUGGLED
from tests.reliability.test_framing import responses
from tests.reliability.test_framing import smuggle_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

UPGRADES = [
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Connection: upgrade\r\nUpgrade: WebSocket",
    b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings",
]


def plain_app(hits: list[str]) -> Any:
    """/upload echoes its body's length; /smuggled records that it ran.

    Plain WSGI, so no framework answers an upgrade request on its own.
    """

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/smuggled":
            hits.append(path)
        body = environ["wsgi.input"].read() if path == "/upload" else b""
        text = str(len(body)).encode()
        start_response("200 OK", [("Content-Length", str(len(text)))])
        return [text]

    return app


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock, timeout=10)


def post(path: bytes, *headers: bytes, body: bytes) -> bytes:
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


@pytest.mark.parametrize("upgrade", UPGRADES, ids=lambda u: u.decode()[:30])
@pytest.mark.parametrize("path", [b"/upload", b"/"], ids=["read", "unread"])
def test_an_upgrade_header_does_not_unframe_the_body(
    serve: Serve, upgrade: bytes, path: bytes
) -> None:
    """With Upgrade headers the app still reads exactly Content-Length bytes."""
    hits: list[str] = []
    server = serve(plain_app(hits))
    data = post(
        path, upgrade, b"Connection: close", b"Content-Length: 5", body=b"hello"
    )
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) == 200, reply
    assert responses(reply) == 1, reply
    if path == b"/upload":
        assert reply.endswith(b"\r\n\r\n5"), reply  # 5 bytes, not the next request
    assert hits == []


@pytest.mark.parametrize("upgrade", UPGRADES, ids=lambda u: u.decode()[:30])
@pytest.mark.parametrize(
    "body",
    [b"5;a\nb\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhel"],
    ids=["ext-bare-lf", "not-hex", "cut-short"],
)
def test_an_upgrade_header_does_not_relax_chunked_bodies(
    serve: Serve, upgrade: bytes, body: bytes
) -> None:
    """A malformed chunked body is a 400 with or without Upgrade headers."""
    hits: list[str] = []
    server = serve(plain_app(hits))
    data = post(b"/upload", upgrade, b"Transfer-Encoding: chunked", body=body)
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) == 400, reply
    assert header_of(reply, "Connection") == "close"
    assert hits == []


@pytest.mark.parametrize(
    "lines",
    [
        b"Connection: keep-alive\r\nConnection: close",
        b"Connection: Upgrade\r\nConnection: close",
        b"Connection: x\r\nConnection: y, close",
    ],
    ids=["keep-alive-then-close", "upgrade-then-close", "list-on-two-lines"],
)
def test_close_on_any_connection_line_closes(serve: Serve, lines: bytes) -> None:
    """A close token on a later Connection line ends the connection too."""
    hits: list[str] = []
    server = serve(plain_app(hits))
    reply = exchange(
        server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n\r\n" + SMUGGLED
    )
    assert status_of(reply) == 200, reply
    assert responses(reply) == 1, reply
    assert hits == []


@pytest.mark.parametrize(
    ("size", "limit"),
    [
        (b"f" * 16, None),
        (b"7" + b"f" * 15, None),
        (b"100000000", None),
        (b"ffffffffffffffff", 10 * 1024 * 1024),
        (b"40000000", 10 * 1024 * 1024),
        (b"10001", 65536),
    ],
    ids=["2**64-1", "2**63-1", "4GiB", "huge-limited", "1GiB-limited", "over-limit"],
)
def test_a_huge_chunk_size_is_a_client_error_not_a_500(
    serve: Serve,
    size: bytes,
    limit: int | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A chunk declared larger than memory or the limit: 400/413, no traceback."""
    hits: list[str] = []
    server = serve(smuggle_app(hits), max_body_size=limit)
    data = post(
        b"/upload",
        b"Transfer-Encoding: chunked",
        body=size + b"\r\n" + b"x" * 65537 + b"\r\n0\r\n\r\n",
    )
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) in ((413,) if size == b"10001" else (400, 413)), reply
    assert header_of(reply, "Connection") == "close"
    assert hits == []
    assert "Traceback" not in capsys.readouterr().err


def test_a_content_length_beyond_memory_is_not_a_500(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no body limit, a Content-Length of 10**18 cut short is a 400, no 500."""
    hits: list[str] = []
    server = serve(smuggle_app(hits), max_body_size=None)
    data = post(b"/upload", b"Content-Length: " + b"9" * 18, body=b"hello")
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) == 400, reply
    assert hits == []
    assert "Traceback" not in capsys.readouterr().err


class Recorder:
    """A plain WSGI app that records how much of each body it read."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            body = environ["wsgi.input"].read()
        except Exception:
            self.lengths.append(-1)
            raise
        self.lengths.append(len(body))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(
    serve: Serve,
) -> None:
    """One huge chunk is cut off at max_body_size: the app never holds it whole."""
    app = Recorder()
    server = serve(app, max_body_size=65536)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post(b"/", b"Transfer-Encoding: chunked", body=b"1000000\r\n"))
        # 16 MiB declared; send 1 MiB, more than the limit, and keep the
        # connection open: the server must answer without waiting for more.
        try:
            sock.sendall(b"x" * (1024 * 1024))
        except OSError:
            pass  # the server refused and closed already
        reply = read_all(sock, timeout=30)
    assert status_of(reply) == 413, reply[:200]
    assert app.lengths == [-1]


@pytest.mark.parametrize(
    "lines",
    [
        ["Transfer-Encoding:\r\n", " chunked\r\n"],
        ["X: a\r\n", " Transfer-Encoding: chunked\r\n"],
        ["X: a\r\n", "\tb\r\n"],
        ["Host: x\r\n", "  \r\n"],
    ],
    ids=["te-folded", "te-in-fold", "tab-fold", "blank-fold"],
)
def test_obsolete_line_folding_is_refused(lines: list[str]) -> None:
    """A folded header line is a 400, as gunicorn answers by default."""
    with pytest.raises(FramingError) as info:
        parse_field_lines(lines)
    assert info.value.status == 400


def test_a_folded_transfer_encoding_smuggles_nothing(serve: Serve) -> None:
    """A folded Transfer-Encoding gets 400 over a real socket, nothing runs after."""
    hits: list[str] = []
    server = serve(smuggle_app(hits))
    data = post(
        b"/upload",
        b"Transfer-Encoding:\r\n chunked",
        body=b"5\r\nhello\r\n0\r\n\r\n",
    )
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) == 400, reply
    assert responses(reply) == 1
    assert hits == []


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: evil.example/x\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: user@evil.example\r\n", 400),
        (b'GET / HTTP/1.1\r\nHost: x"><script>\r\n', 400),
        (b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9.example\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x:80x\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: example.com:8000\r\n", 200),
        (b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n", 200),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", 200),
        (b"GET / HTTP/1.1\r\nHost: xn--caf-dma.example\r\n", 200),
        (b"GET / HTTP/1.1\r\nHost:\r\n", 200),
        (b"GET / HTTP/1.0\r\n", 200),
    ],
)
def test_an_http11_request_needs_one_valid_host(
    serve: Serve, head: bytes, status: int
) -> None:
    """RFC 9112 3.2: no Host (on 1.1) or a Host that is no host[:port] is a 400."""
    hits: list[str] = []
    server = serve(plain_app(hits))
    reply = exchange(server.port, head + b"Connection: close\r\n\r\n" + SMUGGLED)
    assert status_of(reply) == status, reply
    assert responses(reply) == 1, reply
    assert hits == []


@pytest.mark.parametrize(
    "request_line",
    [
        b'GET /" 200 99 "x HTTP/1.1',
        b'GET /a"b HTTP/1.1',
        b'POST /" 200 1 0.1\\ HTTP/1.1',
    ],
)
def test_quotes_cannot_forge_access_log_fields(
    serve: Serve, caplog: pytest.LogCaptureFixture, request_line: bytes
) -> None:
    """A quote in a request line is escaped: the access line keeps its own 2 quotes."""
    caplog.set_level(logging.INFO, logger="gsse.access")
    server = serve(plain_app([]))
    exchange(server.port, request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert wait_until(lambda: any(r.name == "gsse.access" for r in caplog.records))
    line = next(r.getMessage() for r in caplog.records if r.name == "gsse.access")
    assert line.count('"') == 2, line
    assert "\\x22" in line, line


def host_app(seen: list[tuple[str, str, str]]) -> Any:
    """Records PATH_INFO, QUERY_STRING and HTTP_HOST of each request."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(
            (
                environ["PATH_INFO"],
                environ["QUERY_STRING"],
                environ.get("HTTP_HOST", ""),
            )
        )
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return app


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"http://example.com/a/b?q=1", ("/a/b", "q=1", "example.com")),
        (b"HTTPS://example.com:8443/x", ("/x", "", "example.com:8443")),
        (b"http://[::1]:8000/events", ("/events", "", "[::1]:8000")),
        (b"http://example.com", ("/", "", "example.com")),
        (b"http://example.com?q=1", ("/", "q=1", "example.com")),
        (b"http://h//events", ("//events", "", "h")),
    ],
)
def test_an_absolute_form_target_is_routed_by_its_path(
    serve: Serve, target: bytes, expected: tuple[str, str, str]
) -> None:
    """RFC 9112 3.2.2: absolute-form gives PATH_INFO its path, Host its authority."""
    seen: list[tuple[str, str, str]] = []
    server = serve(host_app(seen))
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"
    )
    reply = exchange(server.port, request)
    assert status_of(reply) == 200, reply
    assert seen == [expected]


@pytest.mark.parametrize(
    "target",
    [
        b"ftp://example.com/x",
        b"javascript://x/y",
        b"http:///events",
        b"http://user@example.com/x",
        b"http://exa%mple/x",
        b"http://a:b:c/x",
        b"://x/y",
    ],
)
def test_a_bad_absolute_form_target_is_refused(serve: Serve, target: bytes) -> None:
    """A scheme other than http(s), or no valid host[:port], is a 400."""
    seen: list[tuple[str, str, str]] = []
    server = serve(host_app(seen))
    request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = exchange(server.port, request + SMUGGLED)
    assert status_of(reply) == 400, reply
    assert responses(reply) == 1
    assert seen == []
