"""Client misbehaviour gets a 4xx and a quiet log, never a server error.

Garbage, resets mid-request, half-sent requests and bodies sent too slowly
or too large: each gets its status (or a plain close), no traceback, no
WARNING or ERROR line, and every log line carrying client bytes has its
control characters escaped.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import struct
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from gsse import App
from gsse import Event
from gsse import Server
from gsse.config import Config
from gsse.limits import DEFAULT_MAX_BODY_SIZE
from gsse.logsafe import escape
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.procs import Processes
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import processes
from tests.reliability.support import header_of
from tests.reliability.support import raw_request
from tests.reliability.support import read_all
from tests.reliability.support import status_of
from tests.reliability.support import stream_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

GARBAGE = [
    b"GET / HTTP/1\r\n\r\n",  # 16 bytes: made pywsgi print a traceback
    b"GET / HTTP/1.1.1\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET /\r\x1b[31mforged HTTP/1.1\r\n\r\n",
    b"GET /a HTTP/1.1\r\n127.0.0.1 - - forged line\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x1b[2J\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS ClientHello
    b"\x00\xff\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx",
]


def send(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, return the answer (until the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock, timeout=5)


def logged_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("gsse")]


def test_garbage_gets_4xx_with_no_traceback_and_escaped_logs(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Malformed requests: a 4xx, no traceback, nothing above INFO, no raw controls."""
    caplog.set_level(logging.DEBUG)
    server = serve(stream_app(lambda writer: None))
    rng = random.Random(16)
    inputs = GARBAGE + [bytes(rng.randrange(256) for _ in range(60)) for _ in range(20)]
    for data in inputs:
        reply = send(server.port, data)
        assert reply == b"" or 400 <= status_of(reply) < 600, (data, reply)
        assert reply == b"" or header_of(reply, "Connection") == "close"
    assert http_get(server.port) == (200, b"ok")
    assert "Traceback" not in capsys.readouterr().err
    records = logged_lines(caplog)
    assert records, "the access log saw nothing"
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    for record in records:
        assert not CONTROL.search(record.getMessage()), record.getMessage()
    # One INFO line per request at most: the access log's.
    assert len([r for r in records if r.levelno == logging.INFO]) <= len(inputs) + 1


def test_the_access_log_escapes_client_bytes(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A CR or ESC in a request line reaches the access log as \\x0d, \\x1b."""
    caplog.set_level(logging.INFO, logger="gsse.access")
    server = serve(stream_app(lambda writer: None))
    raw_request(server.port, b"GET /\rx\x1b[31m HTTP/1.1\r\n\r\n")
    access = [r.getMessage() for r in caplog.records if r.name == "gsse.access"]
    assert any("GET /\\x0dx\\x1b[31m HTTP/1.1" in line for line in access), access
    assert escape("a\\x0d\r\n\x85") == "a\\\\x0d\\x0d\\x0a\\x85"


def test_escape_cuts_long_text() -> None:
    """escape() bounds what one log line carries from a client."""
    assert escape("x" * 600) == "x" * 512 + "..."
    assert escape("\u2028") == "\\u2028"


def test_a_reset_in_the_middle_of_the_headers_is_quiet(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A client that resets mid-headers costs no traceback and no log above DEBUG."""
    caplog.set_level(logging.DEBUG)
    server = serve(stream_app(lambda writer: None))
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: abc")
        time.sleep(0.01)  # let the server start reading the headers
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    assert wait_until(lambda: server.wsgi.limiter.connections == 0, timeout=10)
    assert "Traceback" not in capsys.readouterr().err
    assert [r for r in logged_lines(caplog) if r.levelno >= logging.INFO] == []


def test_a_half_sent_request_line_gets_408(serve: Serve) -> None:
    """A request line begun and not finished in header_timeout gets 408."""
    server = serve(stream_app(lambda writer: None), header_timeout=0.3)
    for partial in (b"G", b"GET /eve", b"GET / HTTP/1.1\r"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(partial)
            reply = read_all(sock, timeout=5)
        assert status_of(reply) == 408, (partial, reply)
        assert header_of(reply, "Connection") == "close"


def body_app() -> App:
    app = App()

    @app.route("/upload", methods=["POST"])
    def upload(event: Event) -> str:
        return str(len(event.request.get_data()))

    return app


def test_a_body_that_stalls_gets_408(serve: Serve) -> None:
    """A body that pauses longer than body_idle_timeout gets 408 and a close."""
    server = serve(body_app(), body_idle_timeout=0.3, max_connections=2)
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        for sock in socks:
            sock.sendall(head + b"ab")
        replies = [read_all(sock, timeout=5) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert [status_of(reply) for reply in replies] == [408, 408]
    assert all(header_of(reply, "Connection") == "close" for reply in replies)
    # Both slots are free again.
    assert wait_until(lambda: server.wsgi.limiter.open_connections == 0)
    ok = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + b"0123456789"
    assert status_of(raw_request(server.port, ok)) == 200


def trickle(port: int, head: bytes, count: int) -> bytes:
    """Send ``head``, then a byte every 50 ms until an answer (or ``count``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        for _ in range(count):
            try:
                sock.sendall(b"x")
            except OSError:
                break
            sock.settimeout(0.05)
            try:
                first = sock.recv(65536)
            except TimeoutError:
                continue
            return first + read_all(sock, timeout=5)
    return b""


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_that_trickles_gets_408_after_body_timeout(
    serve: Serve, framing: str
) -> None:
    """A byte now and then keeps the idle timer happy, not the total one."""
    server = serve(body_app(), body_idle_timeout=5, body_timeout=0.5)
    if framing == "length":
        head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    else:
        head = (
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"186a0\r\n"
        )
    reply = trickle(server.port, head, count=400)
    assert status_of(reply) == 408, reply


def test_bodies_have_a_default_size_limit(serve: Serve) -> None:
    """max_body_size defaults to 10 MiB (413 above it); None lifts it."""
    assert DEFAULT_MAX_BODY_SIZE == 10 * 1024 * 1024
    server = serve(body_app())
    assert server.limits.max_body_size == DEFAULT_MAX_BODY_SIZE
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    reply = raw_request(server.port, head % (DEFAULT_MAX_BODY_SIZE + 1))
    assert status_of(reply) == 413
    unlimited = serve(body_app(), max_body_size=None)
    assert unlimited.limits.max_body_size is None
    assert Config(app="x:y", max_body_size=0).server_options()["max_body_size"] is None


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as manager:
        yield manager


def test_gsse_run_is_quiet_about_bad_clients_and_takes_max_body_size(
    procs: Processes,
) -> None:
    """Under `gsse run --log-level warning` bad clients leave no log at all."""
    port = free_port()
    proc = procs.gsse(
        "run", "tests.apps.cli_app:app", "--port", str(port),
        "--log-level", "warning", "--max-body-size", "100", env=clean_env(),
    )  # fmt: skip
    proc.wait_port(port)
    for data in GARBAGE:
        send(port, data)
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: abc")
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"x" * 101
    assert status_of(raw_request(port, big)) == 413
    assert http_get(port, "/")[0] == 200
    log = proc.log
    assert "Traceback" not in log, log
    assert "ERROR" not in log and "WARNING" not in log, log


def test_decoded_paths_are_escaped_in_log_lines(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """%0d or %1b in a path decode to controls; log lines still escape them."""
    caplog.set_level(logging.DEBUG)
    app = App()

    @app.route("/boom/<path:rest>")
    def boom(event: Event) -> str:
        raise RuntimeError("boom")

    @app.route("/s/<path:rest>")
    def stream(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(lambda writer: writer.send_event("hi"))

    server = serve(app)
    forged = b"/boom/x%0d127.0.0.1%20forged%1b[2J"
    reply = raw_request(
        server.port,
        b"GET " + forged + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert status_of(reply) == 500
    with RawStream(server.port, "/s/x%0dforged%1b[2J") as events:
        events.read_until(b"hi")
    assert wait_until(lambda: len(server.registry) == 0)
    messages = [r.getMessage() for r in logged_lines(caplog)]
    assert any("/boom/x\\x0d127" in m for m in messages), messages
    assert any("/s/x\\x0dforged\\x1b" in m for m in messages), messages
    assert not [m for m in messages if CONTROL.search(m)]
