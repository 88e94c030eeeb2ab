"""The seed pattern end to end over real sockets: headers, wire, lifecycle."""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections.abc import Callable

import gevent
import pytest
from gevent.event import Event as GeventEvent

from gsse import App
from gsse import ClientDisconnected
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import stream_app
from tests.helpers import wait_until

Serve = Callable[..., Server]


def test_headers_arrive_before_the_callbacks_first_sleep_ends(serve: Serve) -> None:
    """The headers are flushed before the callback runs, not with its first event."""
    go = GeventEvent()

    def slow_start(writer: SSEWriter) -> None:
        with writer:
            # Its first event waits until the test has read the headers (or
            # for far longer than the test waits for them).
            go.wait(110)
            writer.send_event("late")

    server = serve(stream_app(slow_start))
    with RawStream(server.port) as stream:  # reads the head, or fails in 60 s
        assert stream.status == 200
        assert b"late" not in stream.body
        go.set()
        assert stream.read_until(b"late").endswith(b"data: late\n\n")


def test_sse_headers(serve: Serve) -> None:
    """The response carries the SSE headers, chunked, with no Content-Length."""
    server = serve(stream_app(lambda writer: writer.close()))
    with RawStream(server.port) as stream:
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        assert stream.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in stream.headers


def counter(writer: SSEWriter) -> None:
    with writer:
        writer.send_event("one", event="tick", id="1")
        writer.send_event({"n": 2}, id="2")
        writer.comment("note")
        writer.send_event("a\nb")
        writer.send_event(id="3", retry=1500)


EXPECTED_BODY = (
    b": ok\n\n"
    b"event: tick\nid: 1\ndata: one\n\n"
    b'id: 2\ndata: {"n":2}\n\n'
    b": note\n\n"
    b"data: a\ndata: b\n\n"
    b"id: 3\nretry: 1500\n\n"
)


def test_wire_bytes_over_http11_are_exact(serve: Serve) -> None:
    """HTTP/1.1 gets exactly the encoded events, then a proper chunked end."""
    server = serve(stream_app(counter))
    with RawStream(server.port) as stream:
        assert stream.read_to_end() == EXPECTED_BODY
        assert stream.ended and not stream.cut


def test_wire_bytes_over_http10_are_close_delimited(serve: Serve) -> None:
    """HTTP/1.0 gets the same bytes, unchunked, ended by closing the connection."""
    server = serve(stream_app(counter))
    with RawStream(server.port, version="1.0") as stream:
        assert "transfer-encoding" not in stream.headers
        assert stream.read_to_end() == EXPECTED_BODY
        assert stream.ended


def test_retry_is_sent_first(serve: Serve) -> None:
    """start_sse(retry=...) makes the first chunk a retry: field."""
    server = serve(stream_app(lambda writer: writer.close(), retry=2000))
    with RawStream(server.port) as stream:
        assert stream.read_to_end() == b"retry: 2000\n\n"


def test_last_event_id_and_path_params_reach_the_stream(serve: Serve) -> None:
    """Last-Event-ID and route variables are on the Event and the writer."""
    app = App()
    seen: dict[str, object] = {}

    @app.route("/rooms/<room>/events")
    def room(event: Event) -> None:
        seen["event"] = (event.last_event_id, event.path_params)
        event.start_sse()

        def callback(writer: SSEWriter) -> None:
            with writer:
                writer.send_event(writer.last_event_id or "none")

        event.set_stream_callback(callback)

    server = serve(app)
    with RawStream(
        server.port, "/rooms/lobby/events", headers={"Last-Event-ID": "41"}
    ) as s:
        assert s.read_to_end().endswith(b"data: 41\n\n")
    assert seen["event"] == ("41", {"room": "lobby"})


def test_a_raising_callback_is_logged_and_its_stream_ends_cleanly(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback error closes only its stream, with a traceback in the log."""
    keep_going = GeventEvent()

    def broken(writer: SSEWriter) -> None:
        writer.send_event("before")
        raise RuntimeError("boom")

    def healthy(writer: SSEWriter) -> None:
        with writer:
            keep_going.wait(5)
            writer.send_event("still here")

    app = stream_app(broken)

    @app.route("/healthy")
    def healthy_route(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(healthy)

    server = serve(app)
    with RawStream(server.port, "/healthy") as other:
        with caplog.at_level(logging.ERROR, logger="gsse"):
            with RawStream(server.port) as stream:
                assert stream.read_to_end().endswith(b"data: before\n\n")
                assert stream.ended and not stream.cut
        assert "boom" in caplog.text and "Traceback" in caplog.text
        assert http_get(server.port) == (200, b"ok")
        keep_going.set()
        assert other.read_to_end().endswith(b"data: still here\n\n")


def test_an_idle_stream_notices_its_client_leaving(serve: Serve) -> None:
    """A client that hangs up is noticed at once, without a write or a ping."""
    writers: list[SSEWriter] = []
    outcome: list[str] = []

    def idle(writer: SSEWriter) -> None:
        writers.append(writer)
        while not writer.closed:
            time.sleep(0.02)
        try:
            writer.send_event("too late")
        except ClientDisconnected:
            outcome.append("ClientDisconnected")

    server = serve(stream_app(idle, ping=0))
    stream = RawStream(server.port)
    assert wait_until(lambda: writers)
    stream.close()
    assert wait_until(lambda: outcome, timeout=2)
    assert outcome == ["ClientDisconnected"]
    assert len(server.registry) == 0


def test_a_loop_ends_by_itself_when_the_client_leaves(serve: Serve) -> None:
    """send_event raises ClientDisconnected, so `while True` loops end."""
    ended = GeventEvent()

    def forever(writer: SSEWriter) -> None:
        try:
            while True:
                writer.send_event("x")
                time.sleep(0.01)
        finally:
            ended.set()

    server = serve(stream_app(forever))
    with RawStream(server.port) as stream:
        stream.read_until(b"data: x\n\n")
    assert ended.wait(60)


def test_keep_alive_pings_an_idle_stream(serve: Serve) -> None:
    """An idle stream gets ': ping' comments; ping=0 turns them off."""
    seen: list[bool] = []

    def close_when_seen(writer: SSEWriter) -> None:
        for _ in range(1200):  # until the test saw three pings (at most 60 s)
            if seen:
                break
            time.sleep(0.05)
        writer.close()

    def wait_then_close(writer: SSEWriter) -> None:
        time.sleep(0.7)
        writer.close()

    server = serve(stream_app(close_when_seen, ping=0.1))
    with RawStream(server.port) as stream:
        stream.read_until(b": ok\n\n" + b": ping\n\n" * 3)
        seen.append(True)
        stream.read_to_end()
        assert stream.ended
    quiet = serve(stream_app(wait_then_close, ping=0))
    with RawStream(quiet.port) as stream:
        assert stream.read_to_end() == b": ok\n\n"


def test_server_and_app_ping_settings_apply(serve: Serve) -> None:
    """ping= per server and per app both reach streams that set none."""

    def wait_then_close(writer: SSEWriter) -> None:
        time.sleep(0.5)
        writer.close()

    server = serve(stream_app(wait_then_close), ping=0.1)
    with RawStream(server.port) as stream:
        assert b": ping" in stream.read_to_end()
    app = stream_app(wait_then_close)
    app.settings = type(app.settings)(ping=0.1)
    server = serve(app, ping=0)
    with RawStream(server.port) as stream:
        assert b": ping" in stream.read_to_end()


def test_a_client_that_stops_reading_is_dropped_after_send_timeout(
    serve: Serve,
) -> None:
    """A full buffer blocks the callback only for send_timeout, then the stream ends."""
    outcome: list[str] = []

    def flood(writer: SSEWriter) -> None:
        big = "x" * 65536
        try:
            for _ in range(2000):
                writer.send_event(big)
            outcome.append("sent everything")
        except ClientDisconnected as exc:
            outcome.append(f"disconnected: {exc}")

    server = serve(stream_app(flood, send_timeout=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        assert wait_until(lambda: outcome, timeout=20)
        assert outcome[0].startswith("disconnected: stream closed: send timeout")
        assert http_get(server.port) == (200, b"ok")
    finally:
        sock.close()


def test_the_stream_stays_open_after_the_callback_returns(serve: Serve) -> None:
    """A callback may hand its writer to other code and return."""
    listeners: list[SSEWriter] = []
    server = serve(stream_app(listeners.append))
    with RawStream(server.port) as stream:
        assert wait_until(lambda: listeners)
        stream.read_until(b": ok")
        gevent.sleep(0.1)
        listeners[0].send_event("from elsewhere")
        listeners[0].close()
        assert stream.read_to_end().endswith(b"data: from elsewhere\n\n")
        assert stream.ended


def test_writer_methods_after_close(serve: Serve) -> None:
    """close() is idempotent; closed is True; sending afterwards raises."""
    results: list[object] = []

    def callback(writer: SSEWriter) -> None:
        writer.close()
        writer.close()
        results.append(writer.closed)
        try:
            writer.send_event("x")
        except ClientDisconnected:
            results.append("raised")

    server = serve(stream_app(callback))
    with RawStream(server.port) as stream:
        stream.read_to_end()
    assert results == [True, "raised"]


def test_bad_fields_raise_and_write_nothing(serve: Serve) -> None:
    """An invalid send raises ValueError and leaves the stream intact."""
    errors: list[str] = []

    def callback(writer: SSEWriter) -> None:
        with writer:
            for bad in ({"event": "a\nb"}, {"id": "\0"}, {"retry": -5}):
                try:
                    writer.send_event("x", **bad)  # type: ignore[arg-type]
                except ValueError as exc:
                    errors.append(str(exc))
            writer.send_event("good")

    server = serve(stream_app(callback))
    with RawStream(server.port) as stream:
        assert stream.read_to_end() == b": ok\n\ndata: good\n\n"
    assert len(errors) == 3


def test_graceful_shutdown_lets_streams_say_goodbye(serve: Serve) -> None:
    """1. Streams see shutting_down; 2. polite ones end; 3. the rest close cleanly."""

    def polite(writer: SSEWriter) -> None:
        with writer:
            while not writer.shutting_down:
                time.sleep(0.02)
            writer.send_event("bye")

    def stubborn(writer: SSEWriter) -> None:
        while True:
            time.sleep(0.05)
            if writer.closed:
                return

    app = stream_app(polite)

    @app.route("/stubborn")
    def stubborn_route(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(stubborn)

    server = serve(app)
    with RawStream(server.port) as one, RawStream(server.port, "/stubborn") as two:
        one.read_until(b": ok")
        two.read_until(b": ok")
        closed = server.stop(graceful_timeout=0.5)
        assert closed == 1  # the stubborn one, ended by the grace period
        assert one.read_to_end().endswith(b"data: bye\n\n") and one.ended
        two.read_to_end()
        assert two.ended and not two.cut


def test_head_request_gets_headers_only(serve: Serve) -> None:
    """HEAD on a stream answers the headers and never runs the callback."""
    ran: list[bool] = []
    server = serve(stream_app(lambda writer: ran.append(True)))
    with RawStream(server.port, method="HEAD") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    gevent.sleep(0.1)
    assert ran == []


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _greenlets() -> int:
    from greenlet import greenlet

    return sum(isinstance(o, greenlet) and not o.dead for o in gc.get_objects())


@pytest.mark.slow
def test_connect_drop_cycles_leak_nothing(serve: Serve) -> None:
    """Many connect/drop cycles leave no sockets, greenlets or streams behind."""

    def idle(writer: SSEWriter) -> None:
        writer.send_event("hi")
        while not writer.closed:
            time.sleep(0.05)

    server = serve(stream_app(idle))
    for _ in range(20):  # warm up lazily created objects
        with RawStream(server.port) as stream:
            stream.read_until(b"hi")
    assert wait_until(lambda: len(server.registry) == 0)
    gc.collect()
    fds, greenlets = _open_fds(), _greenlets()
    for _ in range(300):
        with RawStream(server.port) as stream:
            stream.read_until(b"hi")
    assert wait_until(lambda: len(server.registry) == 0, timeout=5)
    gevent.sleep(0.2)
    gc.collect()
    assert _open_fds() <= fds + 2
    assert _greenlets() <= greenlets + 2


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_thousand_tick_loops_do_not_stall_a_plain_get(serve: Serve) -> None:
    """1000 streams looping send; sleep(0.1) still let plain GETs through.

    How fast they get through is measured by bench/'s ``ticks`` scenario.
    """
    running: list[int] = []

    def tick(writer: SSEWriter) -> None:
        running.append(1)
        try:
            for i in range(600):
                writer.send_event(str(i))
                time.sleep(0.1)
        except ClientDisconnected:
            pass

    server = serve(stream_app(tick))
    streams = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            streams.append(s)
        assert wait_until(lambda: len(running) == 1000, timeout=30)
        for _ in range(20):
            assert http_get(server.port) == (200, b"ok")
            time.sleep(0.05)
    finally:
        for s in streams:
            s.close()
