"""QueueTransport: a stream served by another WSGI host (any gevent host).

The host's response iterator (:meth:`QueueTransport.drain`) takes what the
stream buffered and writes it with the host's own socket code and HTTP
framing.
"""

from __future__ import annotations

from collections.abc import Iterator

import gevent
from gevent.event import Event as GeventEvent

from .base import Transport


class QueueTransport(Transport):
    """Hands a stream's buffer to a WSGI host's response iterator.

    The host pulls with :meth:`drain`, which yields everything buffered as
    one chunk (so a burst becomes one socket write) and ends when the
    stream is closed. The host does the HTTP framing.
    """

    __slots__ = ("_ready", "_consumer")

    def __init__(self) -> None:
        super().__init__(chunked=False)
        self._ready = GeventEvent()
        self._consumer: gevent.Greenlet | None = None

    def wake(self) -> None:
        self._ready.set()

    def finish(self) -> None:
        self._ready.set()

    def drain(self) -> Iterator[bytes]:
        """Yield buffered bytes until the stream is closed (run by the host)."""
        self._consumer = gevent.getcurrent()
        stream = self.stream
        assert stream is not None, "drain() before the stream was made"
        try:
            while True:
                buffer = stream.buffer
                if buffer:
                    data = bytes(buffer)
                    buffer.clear()
                    stream._note_drained()
                    step = stream.buffer_size
                    if len(data) <= step:
                        yield data
                        continue
                    # In pieces, so each piece the host sends counts as progress.
                    for start in range(0, len(data), step):
                        yield data[start : start + step]
                        stream._progressed()
                elif stream.closed:
                    return
                else:
                    self._ready.clear()
                    self._ready.wait()
        finally:
            self.stream = None  # the stream keeps its transport, not the reverse

    def release(self) -> None:
        if self.stream is not None:
            self.stream.buffer.clear()
        self._ready.set()

    def stalled(self) -> None:
        # The host is stuck writing to a client that reads nothing; end its
        # greenlet so the host closes the connection.
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer is not gevent.getcurrent():
            consumer.kill(block=False)
