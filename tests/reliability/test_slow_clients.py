"""A client that stops reading is dropped in time and hurts nobody else."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import gevent
import pytest

from gsse import ClientDisconnected
from gsse import Server
from gsse import SSEWriter
from gsse.exceptions import CloseReason
from gsse.settings import DEFAULT_BUFFER_SIZE
from gsse.writer import hand_over
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.reliability.support import counter
from tests.reliability.support import stream_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

EVENT = "x" * 16384


def stuck_client(port: int) -> socket.socket:
    """Open a stream with a tiny receive buffer, then never read from it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_a_stuck_client_is_dropped_logged_and_counted(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream ends after send_timeout with a log line naming it, and a count."""
    outcome: list[str] = []
    most_unsent: list[int] = [0]

    def flood(writer: SSEWriter) -> None:
        stream = writer._stream
        try:
            for _ in range(100_000):
                writer.send_event(EVENT)
                most_unsent[0] = max(most_unsent[0], stream.pending)
            outcome.append("sent everything")
        except ClientDisconnected as exc:
            outcome.append(str(exc))

    app = stream_app(flood, send_timeout=0.5)
    app.route("/flood", endpoint="flood")(app.handlers["events"])
    server = serve(app)
    timeouts = counter("send_timeout")
    caplog.set_level(logging.INFO, logger="gsse.transport")
    sock = stuck_client(server.port)
    try:
        assert wait_until(lambda: outcome, timeout=20), "the callback never ended"
        assert "send timeout" in outcome[0]
        # Memory stays bounded: at most the buffer plus one event was held.
        assert most_unsent[0] <= DEFAULT_BUFFER_SIZE + len(EVENT) + 64
        assert counter("send_timeout") == timeouts + 1
        records = [r for r in caplog.records if "read nothing" in r.getMessage()]
        assert len(records) == 1
        assert records[0].path == "/flood"  # type: ignore[attr-defined]
        assert isinstance(records[0].stream_id, int)  # type: ignore[attr-defined]
        assert wait_until(lambda: len(server.registry) == 0)
    finally:
        sock.close()


def test_a_stuck_client_does_not_slow_other_streams(serve: Serve) -> None:
    """While one client is stuck, another stream keeps getting its events."""

    def flood(writer: SSEWriter) -> None:
        for _ in range(100_000):
            writer.send_event(EVENT)

    def ticks(writer: SSEWriter) -> None:
        for i in range(40):
            writer.send_event(str(i))
            gevent.sleep(0.02)
        writer.close()

    app = stream_app(ticks)
    app.route("/flood", endpoint="flood")(lambda event: _start(event, flood))
    server = serve(app, send_timeout=5.0)
    stuck = stuck_client(server.port)
    try:
        # Let the stuck stream fill its buffer and block its callback.
        assert wait_until(lambda: _any_full(server), timeout=10)
        with RawStream(server.port) as healthy:
            body = healthy.read_to_end(timeout=10)
        assert body.count(b"data: ") == 40
        assert healthy.ended and not healthy.cut
        assert http_get(server.port) == (200, b"ok")
        # The stuck one is still there, still bounded.
        assert _any_full(server)
    finally:
        stuck.close()


def test_a_subscriber_style_producer_drops_a_lagging_client(serve: Serve) -> None:
    """A producer that never waits (fan-out) overflows and drops the slow client."""
    dropped: list[bool] = []

    def fanout(writer: SSEWriter) -> None:
        stream = hand_over(writer)
        payload = f"data: {EVENT}\n\n".encode()
        for _ in range(100_000):
            try:
                stream.send(payload, wait=False)
            except ClientDisconnected:
                dropped.append(stream.close_reason is CloseReason.OVERFLOW)
                break
            gevent.sleep(0)

    app = stream_app(fanout)
    app.route("/flood", endpoint="flood")(app.handlers["events"])
    server = serve(app)
    before = counter("overflow")
    sock = stuck_client(server.port)
    try:
        assert wait_until(lambda: dropped, timeout=20)
        assert counter("overflow") == before + 1
    finally:
        sock.close()


def _start(event: object, callback: Callable[[SSEWriter], None]) -> None:
    event.start_sse()  # type: ignore[attr-defined]
    event.set_stream_callback(callback)  # type: ignore[attr-defined]


def _any_full(server: Server) -> bool:
    return any(s.full_since for s in list(server.registry._streams))
