"""The Stream owner's contract, over real sockets on 127.0.0.1.

Each test makes streams over real TCP connections (the server end goes to
a :class:`~gsse.transport.SocketTransport`, as the gsse server does after
the headers) and reads the client end as a browser would: the bytes on the
wire are what is asserted, never timings.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
import pytest

from gsse.chunked import LAST_CHUNK
from gsse.chunked import chunk
from gsse.exceptions import ClientDisconnected
from gsse.exceptions import CloseReason
from gsse.metrics import STATS
from gsse.registry import StreamRegistry
from gsse.settings import StreamSettings
from gsse.streams import OVERFLOW_FACTOR
from gsse.streams import Stream
from gsse.streams import broadcast
from gsse.transport import SocketTransport
from gsse.wire import PING
from gsse.wire import encode_event

from .helpers import deadline_after
from .helpers import wait_until

pytestmark = pytest.mark.timeout(60)

BUFFER = 4096


@contextmanager
def connections(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """``count`` real TCP connections: (server end, client end) each."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(count)
    pairs = []
    try:
        for _ in range(count):
            client = socket.create_connection(listener.getsockname(), timeout=10)
            server_end, _ = listener.accept()
            pairs.append((server_end, client))
        yield pairs
    finally:
        listener.close()
        for server_end, client in pairs:
            client.close()
            server_end.close()


def open_stream(sock: socket.socket, **settings: float) -> Stream:
    resolved = StreamSettings(buffer_size=BUFFER, **settings).resolved()  # type: ignore[arg-type]
    return Stream(SocketTransport(sock, chunked=True), resolved)


def stall(pair: tuple[socket.socket, socket.socket]) -> None:
    """Make the client a reader that reads nothing, the kernel holding little."""
    server_end, client = pair
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)


def read_until(client: socket.socket, marker: bytes, timeout: float = 10.0) -> bytes:
    """What ``client`` receives up to and including ``marker`` (bounded)."""
    deadline = deadline_after(timeout)
    data = b""
    client.settimeout(0.2)
    while marker not in data:
        if time.monotonic() > deadline:
            break
        try:
            got = client.recv(65536)
        except TimeoutError:
            continue
        if not got:
            break
        data += got
    return data


def test_send_goes_out_framed_and_close_ends_the_body() -> None:
    """Two sends reach the client as two chunks, close() adds the last chunk."""
    with connections(1) as [(server_end, client)]:
        stream = open_stream(server_end)
        first, second = encode_event("one"), encode_event("two", id="2")
        stream.send(first)
        stream.send(second)
        stream.close()
        body = read_until(client, LAST_CHUNK)
        assert body == chunk(first) + chunk(second) + LAST_CHUNK
        assert stream.close_reason is CloseReason.CLOSED_BY_APP
        assert stream.written == len(body)


def test_send_after_close_raises_and_close_again_does_nothing() -> None:
    """The documented contract: a closed stream refuses every producer."""
    with connections(1) as [(server_end, client)]:
        stream = open_stream(server_end)
        stream.close(CloseReason.SHUTDOWN)
        with pytest.raises(ClientDisconnected, match="shutting down|shutdown"):
            stream.send(encode_event("late"))
        with pytest.raises(ClientDisconnected):
            stream.send(encode_event("late"), wait=False)
        stream.close(CloseReason.CLOSED_BY_APP)  # no-op: the first reason stays
        stream.abort(CloseReason.CLIENT_GONE)  # no-op on the reason too
        broadcast([stream], encode_event("late"))  # skipped, no error
        stream.ping_now()  # nothing is sent
        assert stream.close_reason is CloseReason.SHUTDOWN
        assert read_until(client, LAST_CHUNK) == LAST_CHUNK


def test_a_producer_that_never_waits_overflows_with_the_overflow_reason() -> None:
    """send(wait=False) to a client that reads nothing ends it with OVERFLOW."""
    before = STATS.disconnects.get("overflow", 0)
    closes: list[CloseReason | None] = []
    with connections(1) as [(server_end, client)]:
        stall((server_end, client))
        stream = open_stream(server_end)
        stream.on_close(lambda s: closes.append(s.close_reason))
        event = encode_event("x" * 1000)
        with pytest.raises(ClientDisconnected, match="too slowly"):
            for _ in range(100 * OVERFLOW_FACTOR):
                stream.send(event, wait=False)
                gevent.sleep(0)  # the loop turns: what the kernel takes goes
        assert stream.closed
        assert closes == [CloseReason.OVERFLOW]
        assert STATS.disconnects.get("overflow", 0) == before + 1


def test_broadcast_reaches_every_reader_and_drops_only_the_slow_one() -> None:
    """One frame to many: readers get every event in order; the stalled one ends."""
    readers, events = 8, 1000
    payloads = [encode_event("y" * 500, id=str(n)) for n in range(events)]
    with connections(readers + 1) as pairs:
        stall(pairs[0])
        streams = [open_stream(server_end) for server_end, _ in pairs]
        live = streams[1:]
        received = {i: bytearray() for i in range(1, readers + 1)}

        def read(i: int) -> None:
            client = pairs[i][1]
            client.settimeout(10)
            while True:
                try:
                    got = client.recv(65536)
                except OSError:
                    return
                if not got:
                    return
                received[i] += got

        greenlets = [gevent.spawn(read, i) for i in range(1, readers + 1)]
        try:
            for n, payload in enumerate(payloads, 1):
                broadcast(streams, payload)
                gevent.sleep(0)
                if not n % 50:  # readers keep up, however loaded the machine
                    assert wait_until(lambda: all(s.pending < BUFFER for s in live))
            assert streams[0].close_reason is CloseReason.OVERFLOW
            for stream in streams[1:]:
                assert not stream.closed
                stream.close()
            expected = b"".join(chunk(p) for p in payloads) + LAST_CHUNK
            assert wait_until(
                lambda: all(len(r) >= len(expected) for r in received.values()),
                timeout=20,
            )
            assert all(bytes(r) == expected for r in received.values())
        finally:
            gevent.killall(greenlets, timeout=5)


def test_the_keep_alive_tick_goes_through_the_owner() -> None:
    """An idle stream in a registry gets its ping from Stream.keep_alive."""
    ticked: list[Stream] = []

    class Watched(Stream):
        __slots__ = ()

        def keep_alive(self, now: float) -> None:
            ticked.append(self)
            super().keep_alive(now)

    registry = StreamRegistry()
    pings = STATS.pings
    with connections(1) as [(server_end, client)]:
        settings = StreamSettings(ping=0.05, buffer_size=BUFFER).resolved()
        stream = Watched(SocketTransport(server_end, chunked=True), settings)
        registry.add(stream)
        try:
            assert read_until(client, chunk(PING)) == chunk(PING)
            assert ticked and set(ticked) == {stream}
            assert STATS.pings > pings
        finally:
            stream.close()
        assert wait_until(lambda: len(registry) == 0)


def test_a_writer_that_waits_times_out_with_the_send_timeout_reason() -> None:
    """send() blocks while the client is behind, then ends with SEND_TIMEOUT."""
    with connections(1) as [(server_end, client)]:
        stall((server_end, client))
        stream = open_stream(server_end, send_timeout=0.3)
        event = encode_event("z" * 1000)
        with pytest.raises(ClientDisconnected, match="send timeout"):
            for _ in range(10_000):
                stream.send(event)
        assert stream.close_reason is CloseReason.SEND_TIMEOUT
        # Memory stayed bounded: the writer waited instead of piling up.
        assert stream.pending == 0  # released with the socket


def test_a_stream_that_ended_is_freed_without_the_cyclic_gc() -> None:
    """Closing and aborting leave no Stream <-> transport cycle behind."""
    import gc
    import weakref

    refs = []
    gc.disable()
    try:
        with connections(2) as [(first, _), (second, _)]:
            closed, aborted = open_stream(first), open_stream(second)
            closed.send(encode_event("bye"))
            closed.close()
            aborted.abort(CloseReason.CLIENT_GONE)
            gevent.sleep(0)
            refs = [weakref.ref(closed), weakref.ref(aborted)]
            del closed, aborted
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()
