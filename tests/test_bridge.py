"""The thread-pool bridge: blocking callbacks and handlers in real OS threads."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import gevent
import pytest
from gevent.monkey import get_original

from gsse import App
from gsse import ClientDisconnected
from gsse import Event
from gsse import Server
from gsse import SSEWriter

from .helpers import RawStream
from .helpers import http_get
from .helpers import wait_until

pytestmark = pytest.mark.timeout(60)

# Real thread ids and primitives: the patched ones are greenlet-based.
_thread_ident = get_original("_thread", "get_ident")
_allocate_lock = get_original("_thread", "allocate_lock")
_real_select = get_original("select", "select")
LOOP_THREAD = _thread_ident()

Serve = Callable[..., Server]


def blocking_app(callback: Callable[[SSEWriter], object]) -> App:
    """/events streams ``callback`` with ``blocking=True``; / answers ``ok``."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(callback, blocking=True)

    @app.route("/")
    def index(event: Event) -> str:
        return "ok"

    return app


def test_a_c_call_in_a_thread_leaves_the_loop_free(serve: Serve) -> None:
    """pbkdf2 in a blocking callback does not stop a plain GET meanwhile."""
    finished: list[bool] = []
    release: list[bool] = []

    def hash_hard(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("start")
            # C code with the GIL released, until the test has had its GET
            # (or for a minute or so: far longer than the test waits).
            for _ in range(600):
                hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 100_000)
                if release:
                    break
            finished.append(True)
            writer.send_event("done")

    server = serve(blocking_app(hash_hard))
    with RawStream(server.port) as stream:
        assert stream.events(1)[0].data == "start"
        assert http_get(server.port) == (200, b"ok")
        assert not finished, "the GET waited for the C call"
        release.append(True)
        assert stream.events(1)[0].data == "done"


def test_an_unpatched_select_in_a_thread_leaves_the_loop_free(serve: Serve) -> None:
    """A real, blocking select() in a callback does not stall other requests."""
    finished: list[bool] = []
    release: list[bool] = []

    def wait_in_select(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("start")
            # Blocking selects until the test has had its GETs (at most 90 s).
            for _ in range(900):
                _real_select([], [], [], 0.1)
                if release:
                    break
            finished.append(True)
            writer.send_event("after")

    server = serve(blocking_app(wait_in_select))
    with RawStream(server.port) as stream:
        assert stream.events(1)[0].data == "start"
        for _ in range(3):
            assert http_get(server.port) == (200, b"ok")
        assert not finished, "a GET waited for the blocked thread"
        release.append(True)
        assert stream.events(1)[0].data == "after"


def test_time_sleep_really_sleeps_in_the_thread(serve: Serve) -> None:
    """``time.sleep`` in a blocking callback sleeps its own thread, off the loop."""

    def sleepy(writer: SSEWriter) -> None:
        with writer:
            started = time.monotonic()
            time.sleep(0.3)
            slept = time.monotonic() - started
            writer.send_event({"slept": slept, "thread": _thread_ident()})

    server = serve(blocking_app(sleepy))
    with RawStream(server.port) as stream:
        assert http_get(server.port) == (200, b"ok")
        (message,) = stream.events(1)
    report = json.loads(message.data)
    assert report["slept"] >= 0.3
    assert report["thread"] != LOOP_THREAD


def test_fifty_blocking_streams_share_a_pool_of_eight(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A full pool queues the work, says so once, and every stream completes."""

    def slow_one(writer: SSEWriter) -> None:
        with writer:
            time.sleep(0.1)
            writer.send_event(str(_thread_ident()))

    caplog.set_level(logging.INFO, logger="gsse.pool")
    server = serve(blocking_app(slow_one), threads=8)
    results: dict[int, str] = {}

    def client(n: int) -> None:
        with RawStream(server.port, timeout=30) as stream:
            results[n] = stream.events(1, timeout=30)[0].data

    clients = [gevent.spawn(client, n) for n in range(50)]
    assert http_get(server.port) == (200, b"ok")  # served while they queue
    gevent.joinall(clients, timeout=40, raise_error=True)
    assert len(results) == 50
    assert 1 < len(set(results.values())) <= 8
    full = [r for r in caplog.records if "thread pool full" in r.getMessage()]
    assert full and full[0].levelno == logging.WARNING
    assert len(full) < 50, "logged once per burst, not once per task"
    assert wait_until(lambda: server.pool.pending == 0, timeout=5)


def test_a_disconnect_mid_write_raises_in_the_thread(serve: Serve) -> None:
    """A thread stuck writing to a client that left gets ClientDisconnected."""
    outcome: list[BaseException] = []

    def firehose(writer: SSEWriter) -> None:
        big = "x" * 65536
        try:
            while True:
                writer.send_event(big)
        except BaseException as exc:
            outcome.append(exc)
            raise

    server = serve(blocking_app(firehose), send_timeout=60)
    stream = RawStream(server.port)
    stream.read_until(b"xxxx")
    time.sleep(0.3)  # stop reading: the stream's buffer fills, the thread waits
    stream.close()
    assert wait_until(lambda: outcome, timeout=10)
    assert isinstance(outcome[0], ClientDisconnected)


def test_a_thread_writing_to_a_client_that_reads_nothing_waits(
    serve: Serve,
) -> None:
    """Bytes in flight from a thread count against the buffer: it stays bounded."""
    peak = [0]
    result: list[str] = []
    chunk = "x" * 16 * 1024

    def flood(writer: SSEWriter) -> None:
        stream = writer._stream  # the stream's buffer, for the assertion
        try:
            for _ in range(2000):
                writer.send_event(chunk)
                in_flight = stream.posted - stream.applied
                peak[0] = max(peak[0], stream.pending + in_flight)
            result.append("all sent")
        except ClientDisconnected:
            result.append("timed out")

    server = serve(blocking_app(flood), send_timeout=1)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # then read nothing
        assert wait_until(lambda: result, timeout=20)
    finally:
        sock.close()
    assert result == ["timed out"]
    # The buffer (64 KiB) plus at most the one event that crossed it.
    assert peak[0] <= 64 * 1024 + 2 * len(chunk) + 64


def test_handlers_in_threads_streams_on_the_loop(serve: Serve) -> None:
    """``handlers="threads"``: handlers in pool threads, callbacks on the loop."""
    app = App()

    @app.route("/where", methods=["GET", "POST"])
    def where(event: Event) -> dict[str, Any]:
        return {
            "in_thread": _thread_ident() != LOOP_THREAD,
            "body": event.request.get_data(as_text=True),
        }

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(
            lambda w: w.send_event(str(_thread_ident() == LOOP_THREAD))
        )

    server = serve(app, handlers="threads")
    status, body = http_get(server.port, "/where")
    assert status == 200
    assert json.loads(body) == {"in_thread": True, "body": ""}
    request = b"POST /where HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    request += b"Connection: close\r\n\r\nhello"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["body"] == "hello"
    with RawStream(server.port) as stream:
        assert stream.events(1)[0].data == "True"


def test_handlers_in_threads_iterate_bodies_in_the_pool(serve: Serve) -> None:
    """A generator body of a plain WSGI app is advanced in a pool thread."""

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            for _ in range(3):
                yield f"{_thread_ident() != LOOP_THREAD};".encode()

        return body()

    server = serve(wsgi_app, handlers="threads")
    assert http_get(server.port) == (200, b"True;True;True;")


def test_bad_pool_options_are_refused() -> None:
    """``threads`` below one and unknown ``handlers`` modes say what to fix."""
    app = App()
    with pytest.raises(ValueError, match="threads must be an int of at least 1"):
        Server(app, port=0, threads=0)
    with pytest.raises(ValueError, match="handlers must be one of greenlets, threads"):
        Server(app, port=0, handlers="processes")


def test_shutdown_leaves_a_stuck_thread_behind_in_time(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A pool thread that never returns does not hold up shutdown past the grace."""
    release = _allocate_lock()
    release.acquire()

    def stuck(writer: SSEWriter) -> None:
        writer.send_event("stuck")
        release.acquire(True, 300)  # blocks this thread; never writes again

    server = serve(blocking_app(stuck))
    try:
        with RawStream(server.port) as stream:
            assert stream.events(1)[0].data == "stuck"
            # The thread is stuck for 300 s; stop() must not wait for it.
            with gevent.Timeout(60, AssertionError("stop() waited for the thread")):
                server.stop(graceful_timeout=0.5)
        assert any("still running" in r.getMessage() for r in caplog.records)
    finally:
        release.release()
