"""A client that half-closes keeps its stream; a client that leaves is noticed.

``shutdown(SHUT_WR)`` sends the same end of file as a client that closes:
the stream must go on for the first and still end promptly for the second.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gevent
import pytest
from gevent.event import Event as GeventEvent

from gsse import ClientDisconnected
from gsse import Server
from gsse import SSEWriter
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.reliability.support import stream_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(30)


def test_a_half_closed_client_keeps_receiving(serve: Serve) -> None:
    """After shutdown(SHUT_WR) the stream goes on and ends properly."""
    go_on = GeventEvent()

    def later(writer: SSEWriter) -> None:
        writer.send_event("one")
        go_on.wait(10)
        writer.send_event("two")
        writer.send_event("three")
        writer.close()

    server = serve(stream_app(later, ping=0))
    with RawStream(server.port) as stream:
        stream.read_until(b"data: one\n\n")
        stream.sock.shutdown(socket.SHUT_WR)
        gevent.sleep(1.5)  # past the server's end-of-file checks
        assert len(server.registry) == 1
        go_on.set()
        stream.read_until(b"data: three\n\n", timeout=5)
        stream.read_to_end()
        assert stream.ended and not stream.cut


def idle_until_closed(outcome: list[str]) -> Callable[[SSEWriter], None]:
    def idle(writer: SSEWriter) -> None:
        writer.send_event("hi")
        deadline = time.monotonic() + 20
        while not writer.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            writer.send_event("too late")
        except ClientDisconnected:
            outcome.append("ClientDisconnected")

    return idle


@pytest.mark.parametrize("reads_everything", [False, True])
def test_a_client_that_half_closes_then_leaves_is_noticed(
    serve: Serve, reads_everything: bool
) -> None:
    """Half-close, then close: the stream ends (by the reset or the next ping)."""
    outcome: list[str] = []
    server = serve(stream_app(idle_until_closed(outcome), ping=0.3))
    stream = RawStream(server.port)
    stream.read_until(b"data: hi\n\n")
    stream.sock.shutdown(socket.SHUT_WR)
    if reads_everything:
        stream.read_until(b": ping\n\n", timeout=5)
    else:
        gevent.sleep(0.5)
    assert outcome == [] and len(server.registry) == 1
    stream.close()
    assert wait_until(lambda: outcome, timeout=10)
    assert outcome == ["ClientDisconnected"]
    assert wait_until(lambda: len(server.registry) == 0)


def test_a_client_that_closes_is_noticed_without_pings(serve: Serve) -> None:
    """With pings off, a client that closes is still noticed (by the probe)."""
    outcome: list[str] = []
    server = serve(stream_app(idle_until_closed(outcome), ping=0))
    stream = RawStream(server.port)
    stream.read_until(b"data: hi\n\n")
    stream.close()
    assert wait_until(lambda: outcome, timeout=5)
    assert outcome == ["ClientDisconnected"]
