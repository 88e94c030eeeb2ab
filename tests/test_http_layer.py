"""gsse's own HTTP/1.1 layer (gsse.http) over real sockets: PEP 3333 and RFC 9112.

Keep-alive (HTTP/1.1 and 1.0), pipelining served in turn and fairly,
``Expect: 100-continue``, ``HEAD``, ``start_response`` with ``exc_info``,
``write()``, ``close()`` on the iterable, response framing, and a lazy
``wsgi.input`` for ``Content-Length`` and chunked bodies.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from gsse.http.server import HTTPServer
from gsse.limits import Limiter
from gsse.limits import Limits
from gsse.registry import StreamRegistry
from tests.reliability.support import header_of
from tests.reliability.support import raw_request
from tests.reliability.support import read_all
from tests.reliability.support import status_of

Serve = Callable[..., HTTPServer]
App = Callable[[dict[str, Any], Any], Any]

pytestmark = pytest.mark.timeout(60)

HOST = b"Host: x\r\n"


@pytest.fixture
def serve() -> Iterator[Serve]:
    """The HTTP layer alone: an ``HTTPServer`` on a free port, no gsse.Server."""
    servers: list[HTTPServer] = []

    def start(app: App, **limits: Any) -> HTTPServer:
        limiter = Limiter(Limits(**limits), StreamRegistry())
        server = HTTPServer(("127.0.0.1", 0), app, limiter)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(timeout=1)


def get(path: bytes = b"/", *headers: bytes, version: bytes = b"1.1") -> bytes:
    return (
        b"GET "
        + path
        + b" HTTP/"
        + version
        + b"\r\n"
        + HOST
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
    )


def echo_path(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    data = environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [data]


def responses(data: bytes) -> list[tuple[int, bytes]]:
    """Split raw Content-Length-framed responses: (status, body) each."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(header_of(head + b"\r\n\r\n", "Content-Length") or 0)
        out.append((status_of(head), rest[:length]))
        data = rest[length:]
    return out


def test_keep_alive_and_pipelining_serve_requests_in_order(serve: Serve) -> None:
    """Three pipelined requests on one connection, answered in turn."""
    server = serve(echo_path)
    data = get(b"/a") + get(b"/b") + get(b"/c", b"Connection: close")
    reply = raw_request(server.server_port, data)
    assert responses(reply) == [(200, b"/a"), (200, b"/b"), (200, b"/c")]
    assert header_of(reply.rsplit(b"HTTP/1.1", 1)[1], "Connection") == "close"


def test_pipelined_requests_yield_to_other_greenlets(serve: Serve) -> None:
    """A greenlet spawned by one request runs before the next pipelined one."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        seen.append(path)
        if path == "/first":
            gevent.spawn(seen.append, "other greenlet")
        start_response("200 OK", [("Content-Length", "0")])
        return []

    server = serve(app)
    raw_request(
        server.server_port, get(b"/first") + get(b"/second", b"Connection: close")
    )
    assert seen == ["/first", "other greenlet", "/second"]


def test_http10_keep_alive_is_asked_for(serve: Serve) -> None:
    """HTTP/1.0 closes unless the client asks keep-alive; then it is kept."""
    server = serve(echo_path)
    reply = raw_request(
        server.server_port, get(b"/old", version=b"1.0") + get(b"/never")
    )
    assert responses(reply) == [(200, b"/old")]
    assert header_of(reply, "Connection") == "close"
    kept = get(b"/a", b"Connection: keep-alive", version=b"1.0")
    reply = raw_request(server.server_port, kept + get(b"/b", version=b"1.0"))
    assert responses(reply) == [(200, b"/a"), (200, b"/b")]
    assert header_of(reply, "Connection") == "keep-alive"


def test_head_has_no_body_and_keeps_the_connection(serve: Serve) -> None:
    """HEAD: the GET's headers (its Content-Length too), no body bytes."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "5")])
        yield b"hello"

    server = serve(app)
    data = b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n" + get(b"/", b"Connection: close")
    reply = raw_request(server.server_port, data)
    first, second = reply.split(b"\r\n\r\n", 1)
    assert header_of(first + b"\r\n\r\n", "Content-Length") == "5"
    assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"\r\n\r\nhello")


@pytest.mark.parametrize("size", [5, 20_000])  # small, and past one send
def test_head_sends_no_body_whatever_its_size(serve: Serve, size: int) -> None:
    """HEAD with a body written by write() or returned: only the head goes out,
    and the next request on the connection is answered in full."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", str(2 * size))])
        write(b"a" * size)
        return [b"b" * size]

    server = serve(app)
    data = b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n" + get(b"/", b"Connection: close")
    reply = raw_request(server.server_port, data)
    first, second = reply.split(b"\r\n\r\n", 1)
    assert header_of(first + b"\r\n\r\n", "Content-Length") == str(2 * size)
    assert second.startswith(b"HTTP/1.1 200 ")
    assert second.endswith(b"\r\n\r\n" + b"a" * size + b"b" * size)


def test_expect_100_continue_is_answered_when_the_body_is_read(serve: Serve) -> None:
    """The client gets 100 Continue before it sends the body the app reads."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = serve(app)
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
        sock.sendall(
            b"PUT / HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\n"
            b"Content-Length: 3\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        reply = read_all(sock)
    assert responses(reply) == [(200, b"abc")]


def test_expect_100_continue_unread_closes_the_connection(serve: Serve) -> None:
    """An app that never reads: no 100 Continue, and the connection closes."""
    server = serve(echo_path)
    data = (
        b"PUT /x HTTP/1.1\r\n"
        + HOST
        + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    reply = raw_request(server.server_port, data)
    assert responses(reply) == [(200, b"/x")]
    assert header_of(reply, "Connection") == "close"


def test_start_response_with_exc_info_replaces_the_status(serve: Serve) -> None:
    """Before the head is sent, exc_info lets the app answer its error instead."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("503 Busy", [("Content-Length", "4")], sys.exc_info())
        return [b"busy"]

    server = serve(app)
    reply = raw_request(server.server_port, get(b"/", b"Connection: close"))
    assert responses(reply) == [(503, b"busy")]


def test_exc_info_after_the_head_reraises_and_closes(serve: Serve) -> None:
    """After the head is out, exc_info re-raises: the response is cut, the
    connection closed (a client sees an incomplete chunked body)."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"part"
        try:
            raise KeyError("x")
        except KeyError:
            start_response("500 Oops", [], sys.exc_info())
        yield b"never"

    server = serve(app)
    reply = raw_request(server.server_port, get(b"/") + get(b"/again"))
    assert reply.count(b"HTTP/1.1") == 1
    assert b"4\r\npart\r\n" in reply and b"never" not in reply
    assert not reply.endswith(b"0\r\n\r\n")


def test_write_callable_and_close_on_the_iterable(serve: Serve) -> None:
    """write() sends before the iterable; close() is called on it, once."""
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b" and iterated"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        write = start_response("200 OK", [])
        write(b"written")
        return Body()

    server = serve(app)
    reply = raw_request(server.server_port, get(b"/", b"Connection: close"))
    assert header_of(reply, "Transfer-Encoding") == "chunked"
    assert reply.endswith(b"7\r\nwritten\r\nd\r\n and iterated\r\n0\r\n\r\n")
    assert closed == [True]


def test_an_http10_stream_of_unknown_length_ends_with_the_connection(
    serve: Serve,
) -> None:
    """HTTP/1.0 has no chunked: the body ends where the connection does."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"a"
        yield b"b"

    server = serve(app)
    reply = raw_request(
        server.server_port, get(b"/", b"Connection: keep-alive", version=b"1.0")
    )
    assert header_of(reply, "Transfer-Encoding") is None
    assert header_of(reply, "Connection") == "close"
    assert reply.endswith(b"\r\n\r\nab")


def test_204_and_304_have_no_body(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(environ["PATH_INFO"][1:] + " X", [])
        return []

    server = serve(app)
    reply = raw_request(
        server.server_port, get(b"/204") + get(b"/304", b"Connection: close")
    )
    assert reply.count(b"HTTP/1.1") == 2
    assert b"Transfer-Encoding" not in reply and b"Content-Length" not in reply


@pytest.mark.parametrize(
    "body",
    [
        b"Content-Length: 18\r\n\r\nline 1\nline 2\nend.",
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"4\r\nline\r\n9\r\n 1\nline 2\r\n5\r\n\nend.\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_wsgi_input_reads_lines_and_sizes_lazily(serve: Serve, body: bytes) -> None:
    """readline(), read(n), iteration and read() over either framing."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        parts = [stream.readline(), stream.read(3), stream.readline(2)]
        parts += list(stream) + [stream.read(), stream.read(10)]
        data = b"|".join(parts)
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]

    server = serve(app)
    data = b"POST / HTTP/1.1\r\n" + HOST + body + get(b"/after", b"Connection: close")
    reply = raw_request(server.server_port, data)
    assert responses(reply)[0] == (200, b"line 1\n|lin|e |2\n|end.||")
    assert len(responses(reply)) == 2  # the connection went on after the body


def test_a_body_left_unread_is_skipped_for_the_next_request(serve: Serve) -> None:
    server = serve(echo_path)
    data = (
        b"POST /a HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 5\r\n\r\nhello"
        + get(b"/b", b"Connection: close")
    )
    assert responses(raw_request(server.server_port, data)) == [
        (200, b"/a"),
        (200, b"/b"),
    ]


def test_an_app_error_is_a_500_that_closes(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    server = serve(app)
    reply = raw_request(server.server_port, get(b"/") + get(b"/again"))
    assert status_of(reply) == 500 and reply.count(b"HTTP/1.1") == 1
    assert header_of(reply, "Connection") == "close"
    assert b"boom" not in reply


def test_any_uppercase_token_is_a_method_as_before(serve: Serve) -> None:
    """llhttp knows the registered methods only; gsse takes any token, as
    gunicorn does (and as it did on pywsgi); a lowercase one is a 400."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        data = environ["REQUEST_METHOD"].encode() + environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]

    server = serve(app)
    brew = b"BREW /pot HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\ntea"
    reply = raw_request(server.server_port, brew + get(b"/", b"Connection: close"))
    assert responses(reply) == [(200, b"BREWtea"), (200, b"GET")]
    assert (
        status_of(
            raw_request(server.server_port, b"brew / HTTP/1.1\r\n" + HOST + b"\r\n")
        )
        == 400
    )
