"""One event larger than a slow reader's buffer, on memory:// (the limits both
backends share are in tests/brokers/test_limits.py)."""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Callable

import gevent
import pytest

import gsse
from gsse import Server
from gsse.wire import EventStreamDecoder
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import StreamClosed
from tests.helpers import wait_until

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)


def sub_path(*channels: str) -> str:
    return "/sub?" + urllib.parse.urlencode([("channel", c) for c in channels])


class SlowStream(RawStream):
    """A client that keeps reading, slowly: 32 KiB at a time, with pauses.

    Its small receive buffer, set before connecting, keeps the kernel from
    taking the event off the server's hands: the server's buffer holds it.
    """

    def __init__(self, port: int, path: str) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        self.sock = sock
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self._raw = b""
        self.body = b""
        self.ended = False
        self.cut = False
        self.decoder = EventStreamDecoder()
        self._read_head(10)

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        gevent.sleep(0.03)
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(32768)
        except ConnectionResetError:
            return b""


@pytest.mark.slow
def test_a_slow_reader_gets_an_event_larger_than_its_buffer_whole(
    serve: Serve,
) -> None:
    """A client slowly reading an event 128x its buffer stays; a stuck one goes."""
    broker = gsse.Broker.from_url("memory://", max_event_size=16 << 20)
    # Default 64 KiB buffer (1 MiB of fan-out overflow); send_timeout shorter
    # than the read takes (at least 4 s for the 4+ MiB the server's buffer
    # holds), so only time *without progress* may count. The
    # event is 8 MiB, as in the report: loopback kernel buffers take up to
    # 4 MiB of it, the server's buffer holds the rest.
    port = serve(make_app(broker), send_timeout=2.0).port
    big = "b" * (8 << 20)
    before = gsse.metrics.STATS.disconnects.get("overflow", 0)
    with SlowStream(port, sub_path("big")) as stream:
        assert stream.status == 200
        assert wait_until(lambda: broker.live_subscribers("big") == 1, timeout=5)
        first = broker.publish("big", big)
        after = broker.publish("big", "small")
        try:
            messages = stream.events(2, timeout=50)
        except StreamClosed:
            pytest.fail("the reading client was dropped")
        assert [(m.id, len(m.data)) for m in messages] == [
            (first, len(big)),
            (after, 5),
        ]
        assert messages[0].data == big
        # Still connected and live.
        live = broker.publish("big", "live")
        assert [m.id for m in stream.events(1, timeout=10)] == [live]
        assert broker.live_subscribers("big") == 1
    assert gsse.metrics.STATS.disconnects.get("overflow", 0) == before
    # The allowance for one large event does not let a stuck client grow
    # without bound: one that reads nothing is still dropped.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(f"GET {sub_path('stuck')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert wait_until(lambda: broker.live_subscribers("stuck") == 1, timeout=5)
        broker.publish("stuck", big)
        for _ in range(5000):
            if broker.live_subscribers("stuck") == 0:
                break
            broker.publish("stuck", "x" * 4000)
            gevent.sleep(0)
        assert broker.live_subscribers("stuck") == 0
    finally:
        sock.close()
