"""``handlers="threads"`` reads request bodies lazily: memory stays bounded.

A server with ``handlers="threads"`` runs in a subprocess; big bodies are
generated on the fly and posted to a path that does not exist (nobody
reads the body) and to a handler that reads it in 64 KiB chunks. The
process's peak resident memory (``VmHWM``) must grow far less than the body.
An in-process server checks every way a handler may read its body.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gevent.monkey import get_original

from tests.procs import Processes
from tests.procs import processes

pytestmark = pytest.mark.timeout(120)

_thread_ident = get_original("_thread", "get_ident")
LOOP_THREAD = _thread_ident()
MIB = 1024 * 1024
BODY = 64 * MIB
PIECE = b"x" * MIB


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as manager:
        yield manager


def memory_kib(pid: int, field: str) -> int:
    """``field`` (``VmRSS``, ``VmHWM``) of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def post(port: int, path: str, size: int, chunked: bool = False) -> bytes:
    """POST ``size`` bytes made on the fly; return the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        if chunked:
            head += "Transfer-Encoding: chunked\r\n\r\n"
        else:
            head += f"Content-Length: {size}\r\n\r\n"
        sock.sendall(head.encode())
        sent = 0
        try:
            while sent < size:
                piece = PIECE[: min(len(PIECE), size - sent)]
                if chunked:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    sock.sendall(piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and closed: read what it said
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize(
    ("path", "chunked", "answer"),
    [
        ("/missing", False, b"404"),
        ("/count", False, b"200"),
        ("/count", True, b"200"),
    ],
)
def test_a_big_body_is_read_lazily(
    procs: Processes, path: str, chunked: bool, answer: bytes
) -> None:
    """A 64 MiB body, read or not, grows the process's peak memory < 16 MiB."""
    proc = procs.start([sys.executable, "-m", "tests.apps.pool_host"])
    port = proc.wait_ready()
    assert post(port, "/count", 10, chunked).endswith(b"\r\n\r\n10")  # warm up
    before = memory_kib(proc.pid, "VmRSS")
    reply = post(port, path, BODY, chunked)
    assert reply.split(b" ", 2)[1] == answer, reply[:200]
    if path == "/count":
        assert reply.endswith(b"\r\n\r\n%d" % BODY)
    grown = memory_kib(proc.pid, "VmHWM") - before
    assert grown < 16 * 1024, f"peak memory grew by {grown} KiB for a 64 MiB body"


def test_a_pool_thread_reads_lines_and_pieces_of_the_body(serve: Any) -> None:
    """``read(n)``, ``readline``, ``readlines`` and iteration all work from a thread."""
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"]
        seen.append(_thread_ident() != LOOP_THREAD)
        seen.append(body.read(3))
        seen.append(body.readline())
        seen.append(body.readlines(1))
        seen.append(list(body))
        seen.append(body.read())
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = serve(app, handlers="threads")
    data = b"abcdef\nline 2\nline 3\nline 4\n"
    reply = post_bytes(server.port, "/", data)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok")
    assert seen == [
        True,
        b"abc",
        b"def\n",
        [b"line 2\n"],
        [b"line 3\n", b"line 4\n"],
        b"",
    ]


def post_bytes(port: int, path: str, data: bytes) -> bytes:
    """POST ``data`` with a Content-Length; return the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        sock.sendall(head.encode() + b"Content-Length: %d\r\n\r\n" % len(data) + data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply
