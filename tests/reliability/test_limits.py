"""Connection, stream, size and time limits answer with clean HTTP errors."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.limits import Limits
from gsse.metrics import STATS
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.reliability.support import header_of
from tests.reliability.support import raw_request
from tests.reliability.support import read_all
from tests.reliability.support import status_of
from tests.reliability.support import stream_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(30)


def hold(writer: SSEWriter) -> None:
    """Send one event, then keep the stream open until the client leaves."""
    writer.send_event("hi")


def test_max_connections_answers_503_with_retry_after(serve: Serve) -> None:
    """Past max_connections a request gets 503 + Retry-After; a slot frees on close."""
    server = serve(stream_app(hold), max_connections=2, retry_after=7)
    before = STATS.rejected.get(503, 0)
    first = RawStream(server.port)
    second = RawStream(server.port)
    try:
        first.read_until(b"hi")
        second.read_until(b"hi")
        refused = raw_request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(refused) == 503
        assert header_of(refused, "Retry-After") == "7"
        assert header_of(refused, "Connection") == "close"
    finally:
        first.close()
    assert wait_until(lambda: len(server.registry) == 1)
    assert http_get(server.port) == (200, b"ok")
    second.close()
    assert STATS.rejected.get(503, 0) == before + 1


def test_max_streams_per_ip_answers_429_but_plain_requests_pass(serve: Serve) -> None:
    """A second stream from one address gets 429; ordinary requests still work."""
    server = serve(stream_app(hold), max_streams_per_ip=1, retry_after=3)
    with RawStream(server.port) as first:
        first.read_until(b"hi")
        with RawStream(server.port) as second:
            assert second.status == 429
            assert second.headers["retry-after"] == "3"
            assert b"too many open streams" in second.read_to_end()
        assert http_get(server.port) == (200, b"ok")
    assert wait_until(lambda: len(server.registry) == 0)
    with RawStream(server.port) as again:
        assert again.status == 200
        again.read_until(b"hi")


def test_a_refused_stream_never_runs_its_callback(serve: Serve) -> None:
    """The 429 is decided before the callback starts."""
    runs: list[int] = []

    def counted(writer: SSEWriter) -> None:
        runs.append(1)
        writer.send_event("hi")

    server = serve(stream_app(counted), max_streams_per_ip=1)
    with RawStream(server.port) as first:
        first.read_until(b"hi")
        for _ in range(5):
            with RawStream(server.port) as other:
                assert other.status == 429
    assert runs == [1]


def test_headers_too_large_get_431(serve: Serve) -> None:
    """Too many header bytes, or too many header lines, get 431."""
    server = serve(stream_app(hold), max_header_size=4096, max_header_count=20)
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    assert status_of(raw_request(server.port, big)) == 431
    many = (
        b"GET / HTTP/1.1\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(25))
        + b"\r\n"
    )
    assert status_of(raw_request(server.port, many)) == 431
    ok = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: b\r\n\r\n"
    assert status_of(raw_request(server.port, ok)) == 200


def test_default_header_limits_refuse_without_a_traceback(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over 100 headers (which makes pywsgi print a traceback) gets a quiet 431."""
    server = serve(stream_app(hold))
    many = (
        b"GET / HTTP/1.1\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        + b"\r\n"
    )
    assert status_of(raw_request(server.port, many)) == 431
    assert "Traceback" not in capsys.readouterr().err


def echo_headers_app() -> App:
    app = App()

    @app.route("/")
    def echo(event: Event) -> dict[str, str | None]:
        environ = event.request.environ
        names = ("HTTP_X_SPACED", "HTTP_COOKIE", "HTTP_X_TWICE")
        return {name: environ.get(name) for name in names}

    return app


@pytest.mark.parametrize(
    "line",
    [
        b"No-Colon-Here",
        b"Space Inside: x",
        b"Space-Before : x",
        b": no name",
        b"X-Nul: a\x00b",
        b"X-Cr: a\rb",
        b"\tfolded-first: x",
    ],
)
def test_malformed_header_lines_get_400(serve: Serve, line: bytes) -> None:
    """A header line that is not ``name: value`` is refused, not skipped."""
    server = serve(echo_headers_app())
    request = b"GET / HTTP/1.1\r\n" + line + b"\r\nHost: x\r\n\r\n"
    reply = raw_request(server.port, request)
    assert status_of(reply) == 400
    assert b"malformed" in reply or b"folded" in reply


def test_header_values_reach_the_app_trimmed_and_joined(serve: Serve) -> None:
    """Values lose outer whitespace; repeats join as pywsgi always did."""
    server = serve(echo_headers_app())
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Spaced: \t padded \t\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\n"
        b"X-Twice: 1\r\nX-Twice: 2\r\n\r\n"
    )
    reply = raw_request(server.port, request)
    assert status_of(reply) == 200
    body = reply.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body) == {
        "HTTP_X_SPACED": "padded",
        "HTTP_COOKIE": "a=1; b=2",
        "HTTP_X_TWICE": "1,2",
    }


def test_a_request_line_too_long_gets_414(serve: Serve) -> None:
    """gevent's own request-line limit (8192 bytes) still answers 414."""
    server = serve(stream_app(hold))
    line = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(raw_request(server.port, line)) == 414


def test_a_body_too_large_gets_413(serve: Serve) -> None:
    """A Content-Length over max_body_size is refused before the app runs."""
    server = serve(stream_app(hold), max_body_size=1000)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    response = raw_request(server.port, head + b"x" * 5000)
    assert status_of(response) == 413
    small = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n"
    )
    assert status_of(raw_request(server.port, small + b"x" * 10)) == 200


def test_a_chunked_body_too_large_gets_413_while_read(serve: Serve) -> None:
    """A chunked body is cut off at max_body_size when the app reads it."""
    app = App()

    @app.route("/upload", methods=["POST"])
    def upload(event: Event) -> str:
        return str(len(event.request.get_data()))

    server = serve(app, max_body_size=1000)
    body = (
        b"".join(b"%x\r\n%s\r\n" % (500, b"y" * 500) for _ in range(4)) + b"0\r\n\r\n"
    )
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    assert status_of(raw_request(server.port, head + body)) == 413
    small = b"%x\r\n%s\r\n0\r\n\r\n" % (300, b"y" * 300)
    response = raw_request(server.port, head + small)
    assert status_of(response) == 200
    assert response.endswith(b"300")


def test_a_silent_connection_is_closed_after_header_timeout(serve: Serve) -> None:
    """A client that connects and sends nothing is dropped (no answer)."""
    server = serve(stream_app(hold), header_timeout=0.3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.settimeout(60)  # generous: the point is that it closes, not when
        assert sock.recv(65536) == b""
    assert http_get(server.port) == (200, b"ok")


def test_headers_sent_too_slowly_get_408(serve: Serve) -> None:
    """A request whose headers never finish gets 408 after header_timeout."""
    server = serve(stream_app(hold), header_timeout=0.3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert status_of(read_all(sock, timeout=5)) == 408


def test_streams_are_not_cut_by_header_timeout(serve: Serve) -> None:
    """header_timeout covers the request only, never an open stream."""

    def slow(writer: SSEWriter) -> None:
        writer.send_event("one")
        time.sleep(0.6)
        writer.send_event("two")

    server = serve(stream_app(slow), header_timeout=0.2)
    with RawStream(server.port) as stream:
        stream.read_until(b"two", timeout=5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"max_streams_per_ip": "3"}, "max_streams_per_ip"),
        ({"max_body_size": -1}, "max_body_size"),
        ({"header_timeout": 0}, "header_timeout"),
        ({"max_header_size": True}, "max_header_size"),
    ],
)
def test_bad_limits_are_rejected_with_a_clear_message(
    options: dict[str, object], message: str
) -> None:
    """Bad limit values raise ValueError naming the option."""
    with pytest.raises(ValueError, match=message):
        Limits(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        Server(stream_app(hold), "127.0.0.1", 0, **options)
