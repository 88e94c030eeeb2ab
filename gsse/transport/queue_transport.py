"""QueueTransport: a stream served by another WSGI host (any gevent host).

The host's response iterator pulls the queued bytes and writes them with
its own socket code and HTTP framing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

import gevent
from gevent.event import Event as GeventEvent

from ..exceptions import ClientDisconnected
from ..exceptions import CloseReason
from ..settings import ResolvedSettings
from ..stats import Stats
from .base import Transport

_monotonic = time.monotonic


class QueueTransport(Transport):
    """Queues bytes for a WSGI host's response iterator (any gevent host).

    The host pulls with :meth:`drain`, which yields everything queued as one
    chunk (so a burst becomes one socket write) and ends when the stream is
    closed. The host does the HTTP framing.
    """

    __slots__ = ("_queue", "_size", "_ready", "_consumer")

    def __init__(self, settings: ResolvedSettings, stats: Stats | None = None) -> None:
        super().__init__(settings, stats)
        self._queue: deque[bytes] = deque()
        self._size = 0
        self._ready = GeventEvent()
        self._consumer: gevent.Greenlet | None = None

    @property
    def pending(self) -> int:
        return self._size

    def write(self, payload: bytes, framed: bytes | None = None) -> None:
        if self.closed:
            raise ClientDisconnected(f"stream closed: {self.close_text}")
        self.wrote = True
        stats = self.stats
        stats.writes += 1
        stats.bytes += len(payload)
        self._queue.append(payload)
        self._size += len(payload)
        if len(payload) > self.largest:
            self.largest = len(payload)
        self._ready.set()
        if self._size > self.buffer_size:
            self._note_buffered()

    def close(
        self, reason: CloseReason = CloseReason.CLOSED_BY_APP, detail: str = ""
    ) -> None:
        if not self.closed:
            self._mark_closed(reason, detail)
            self._ready.set()

    def drain(self) -> Iterator[bytes]:
        """Yield queued bytes until the stream is closed (run by the host)."""
        self._consumer = gevent.getcurrent()
        queue = self._queue
        while True:
            if queue:
                data = b"".join(queue)
                queue.clear()
                self._size = 0
                self._note_drained()
                step = self.buffer_size
                if len(data) <= step:
                    yield data
                    continue
                # In pieces, so each piece the host sends counts as progress.
                for start in range(0, len(data), step):
                    yield data[start : start + step]
                    if self.full_since:
                        self.full_since = _monotonic()
            elif self.closed:
                return
            else:
                self._ready.clear()
                self._ready.wait()

    def _release(self) -> None:
        self._queue.clear()
        self._size = 0
        self._ready.set()

    def _send_timed_out(self) -> None:
        super()._send_timed_out()
        # The host is stuck writing to a client that reads nothing; end its
        # greenlet so the host closes the connection.
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer is not gevent.getcurrent():
            consumer.kill(block=False)
