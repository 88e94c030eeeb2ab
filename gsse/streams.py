"""Stream: the one owner of an open stream, and the only way to write to it.

Follow one stream from the handler to the socket here. The response body
(:mod:`gsse.stream`) makes a :class:`Stream` over a transport, its I/O end
(:mod:`gsse.transport`: the client's socket under the gsse server, the
host's response iterator under any other WSGI host). Four producers write,
each through this class:

- the app's :class:`~gsse.SSEWriter` in a greenlet: :meth:`Stream.send`,
  which waits while the buffer is full (backpressure);
- the writer in a pool thread (``blocking=True``):
  :func:`gsse.bridge.send_from_thread` posts the write to the loop
  (:meth:`Stream.put_posted`) and waits on a ``ThreadWaiter`` while full;
- channel fan-out (:mod:`gsse.brokers.fanout`): :func:`broadcast`, one
  event framed once for many streams; it never waits: a stream lagging
  past :data:`OVERFLOW_FACTOR` buffers is closed with ``OVERFLOW``;
- the registry's tick: :meth:`Stream.keep_alive`, the ping of an idle
  stream and the end of one whose client read nothing for ``send_timeout``.

A stream ends once, by :meth:`Stream.close` (flush, then the end of the
body) or :meth:`Stream.abort` (drop what is unsent), with a shared
:class:`~gsse.CloseReason`. One owner: every producer gets the same rules;
the transport empties :attr:`Stream.buffer`. All in the loop's thread.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gevent.event import Event as GeventEvent

from .chunked import LAST_CHUNK
from .chunked import chunk
from .exceptions import ClientDisconnected
from .exceptions import CloseReason
from .settings import ResolvedSettings
from .stats import STATS
from .stats import Stats
from .transport.base import Transport
from .transport.cork import CORK_BYTES
from .wire import PING

if TYPE_CHECKING:
    from .bridge import ThreadWaiter

__all__ = ["OVERFLOW_FACTOR", "CloseHook", "Stream", "broadcast"]

#: The name docs/operations.md gives for stream ends, whichever module logs.
logger = logging.getLogger("gsse.transport")

#: A producer that never waits may overshoot ``buffer_size`` this many times.
OVERFLOW_FACTOR = 16

_monotonic = time.monotonic
_stream_ids = itertools.count(1)

CloseHook = Callable[["Stream"], None]


class Stream:
    """One open stream: its buffer, limits, keep-alive and end.

    :param transport: where the bytes go (the stream drives it from now on).
    :param settings: ``ping``, ``send_timeout`` and ``buffer_size``.
    :param stats: the host's numbers, where this stream is counted.
    """

    # fmt: off
    __slots__ = (
        "transport", "buffer", "chunked", "_wake",  # the bytes
        "closed", "close_reason", "close_detail", "_hooks",  # the end
        "ping", "ping_at", "wrote",  # keep-alive
        "send_timeout", "buffer_size", "full_since", "largest", "_drained",  # limits
        "posted", "applied", "dropped", "thread_waiter",  # writes from threads
        "stream_id", "path", "written", "stats", "__weakref__",  # logs and metrics
    )
    # fmt: on

    def __init__(
        self,
        transport: Transport,
        settings: ResolvedSettings,
        stats: Stats | None = None,
    ) -> None:
        self.stats = stats if stats is not None else STATS.counted(self)
        #: Encoded bytes not yet taken by the transport, framed for the wire.
        self.buffer = bytearray()
        self.transport = transport
        #: Frame every write as an HTTP/1.1 chunk (the transport says).
        self.chunked = transport.chunked
        self.closed = False
        #: Why the stream ended (``None`` while open); the detail is for logs.
        self.close_reason: CloseReason | None = None
        self.close_detail = ""
        self.ping = settings.ping
        self.send_timeout = settings.send_timeout
        self.buffer_size = settings.buffer_size
        #: Set by every write, cleared by the keep-alive tick; the first ping
        #: is due one full interval after the stream opens.
        self.wrote, self.ping_at = False, _monotonic() + self.ping
        #: When the buffer went over ``buffer_size``, or the client last took
        #: bytes while it stayed over (0.0: it is not over).
        self.full_since = 0.0
        #: The largest write since the buffer was last within ``buffer_size``.
        self.largest = 0
        self._hooks: list[CloseHook] = []
        self._drained: GeventEvent | None = None
        #: For logs and metrics: a process-unique number, the path, the bytes
        #: written to the connection (framing included).
        self.stream_id, self.path, self.written = next(_stream_ids), "", 0
        #: Writes from a pool thread (:mod:`gsse.bridge`): bytes posted and
        #: taken (the rest is in flight), a write found it closed, its waiter.
        self.posted = self.applied = 0
        self.dropped = False
        self.thread_waiter: ThreadWaiter | None = None
        self.stats.streams_opened += 1
        #: Called when the buffer gets its first bytes (see Transport.attach).
        self._wake = transport.attach(self)

    # -- state ----------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Bytes accepted but not yet handed to the socket or host."""
        return len(self.buffer)

    @property
    def close_text(self) -> str:
        """Why the stream ended, in the log's words (``""`` while open)."""
        reason = self.close_reason
        return "" if reason is None else reason.describe(self.close_detail)

    @property
    def log_context(self) -> dict[str, object]:
        """``extra=`` for log records about this stream."""
        return {"stream_id": self.stream_id, "path": self.path}

    def on_close(self, hook: CloseHook) -> None:
        """Call ``hook(stream)`` once when the stream ends, for any reason."""
        if self.closed:
            hook(self)
        else:
            self._hooks.append(hook)

    # -- the producers' paths -------------------------------------------------
    def send(self, payload: bytes, *, wait: bool = True) -> None:
        """Queue one encoded frame (whole ``text/event-stream`` blocks).

        :param wait: block this greenlet while the buffer is full (the app's
            writer); ``False`` for producers that must never wait (a broker
            delivering one event to many): past the overflow bound the
            stream is closed with :attr:`CloseReason.OVERFLOW` instead.
        :raises ClientDisconnected: the stream had ended, or ended here
            (overflow, or full for ``send_timeout`` seconds).
        """
        self._put(payload)
        if self.full_since:
            if wait:
                self._wait_drained()
            elif self._overflowed():
                raise ClientDisconnected(f"stream closed: {self.close_text}")

    def keep_alive(self, now: float) -> None:
        """The periodic duty (the registry's tick): send timeout, then ping."""
        if self.full_since and self.send_timeout:
            if now - self.full_since > self.send_timeout and not self._kernel_sent():
                self._send_timed_out()
            return
        if self.ping <= 0:
            return
        if self.wrote:
            self.wrote = False
            self.ping_at = now + self.ping
        elif now >= self.ping_at:
            self.ping_now()

    def ping_now(self) -> None:
        """Send a keep-alive comment now, if the stream is open."""
        if not self.closed:
            self._put(PING)
            self.stats.pings += 1

    def close(
        self, reason: CloseReason = CloseReason.CLOSED_BY_APP, detail: str = ""
    ) -> None:
        """End the stream cleanly: flush the buffer, then the body's end.

        Once only: again, or after :meth:`abort`, it does nothing.
        """
        if self.closed:
            return
        if self.chunked:
            self.written += len(LAST_CHUNK)  # counted before the close hooks
        self._mark_closed(reason, detail)
        if self.chunked:
            self.buffer += LAST_CHUNK
        self.transport.finish()

    def abort(self, reason: CloseReason | str, detail: str = "") -> None:
        """End the stream now, dropping anything unsent (free text: ``OTHER``)."""
        if not self.closed:
            if not isinstance(reason, CloseReason):
                reason, detail = CloseReason.OTHER, str(reason)
            self._mark_closed(reason, detail)
        self.transport.release()

    # -- the buffer (filled only here) ----------------------------------------
    def put_head(self, head: bytes) -> None:
        """The response head ahead of every event (the access log counts it)."""
        self.buffer[:0] = head

    def _put(self, payload: bytes) -> None:
        """Append one frame without blocking; the transport sends it later."""
        if self.closed:
            raise ClientDisconnected(f"stream closed: {self.close_text}")
        data = chunk(payload) if self.chunked else payload
        self.wrote = True
        stats = self.stats
        stats.writes += 1
        stats.bytes += len(payload)
        buffer = self.buffer
        if not buffer:
            # Nothing waits to be sent: the transport sends at the loop's next
            # turn, with whatever else is written before then (one syscall).
            self._wake()
        buffer += data
        size = len(data)
        if size > self.largest:
            self.largest = size
        self.written += size
        if len(buffer) > CORK_BYTES or len(buffer) > self.buffer_size:
            self._grew()

    def _grew(self) -> None:
        """Past the cork's size, send now; past the buffer's, the clock starts."""
        if len(self.buffer) > CORK_BYTES and self.transport.corked:
            self.transport.uncork()
        elif len(self.buffer) > self.buffer_size:
            self._note_buffered()

    def put_posted(self, payload: bytes) -> None:
        """In the loop: a write a thread posted (see :mod:`gsse.bridge`).

        Never waits (the thread does, on :attr:`thread_waiter`); a stream
        found closed is marked :attr:`dropped` for the thread's next call.
        """
        try:
            self._put(payload)
        except ClientDisconnected:
            self.dropped = True  # the thread's next call raises
        finally:
            self.applied += len(payload)
            in_flight = self.posted - self.applied + len(self.buffer)
            if self.thread_waiter is not None and in_flight <= self.buffer_size:
                self.thread_waiter.set()

    def _wait_drained(self) -> None:
        """Block this greenlet while the buffer is full (backpressure).

        :raises ClientDisconnected: the stream ended, or stayed full for
            ``send_timeout`` seconds (then it is aborted).
        """
        while len(self.buffer) > self.buffer_size and not self.closed:
            waited = _monotonic() - self.full_since
            remaining = self.send_timeout - waited
            if self.send_timeout and remaining <= 0:
                if self._kernel_sent():
                    continue
                self._send_timed_out()
                break
            if self._drained is None:
                self._drained = GeventEvent()
            self._drained.clear()
            self._drained.wait(remaining if self.send_timeout else None)
        if self.closed:
            raise ClientDisconnected(f"stream closed: {self.close_text}")

    def _overflowed(self) -> bool:
        """For producers that never wait: close a client that lags too far.

        The bound is :data:`OVERFLOW_FACTOR` buffers plus the largest single
        write still buffered, so one event larger than the buffer never
        drops a client that is reading it.
        """
        if len(self.buffer) <= OVERFLOW_FACTOR * self.buffer_size + self.largest:
            return False
        self._drop_slow(CloseReason.OVERFLOW, "its client reads too slowly")
        return True

    def _send_timed_out(self) -> None:
        why = f"its client read nothing for {self.send_timeout:.1f} s"
        self._drop_slow(CloseReason.SEND_TIMEOUT, why)
        self.transport.stalled()

    def _drop_slow(self, reason: CloseReason, why: str) -> None:
        unsent = len(self.buffer)
        logger.info(
            "stream %d %s: closing, %s (%d bytes unsent)",
            *(self.stream_id, self.path, why, unsent),
            extra=self.log_context,
        )
        detail = "the client reads too slowly" if reason is CloseReason.OVERFLOW else ""
        self.abort(reason, detail)

    # -- what the transport reports -------------------------------------------
    def _note_buffered(self) -> None:
        """Bytes were left in the buffer: the send-timeout clock starts if full."""
        if not self.full_since and len(self.buffer) > self.buffer_size:
            self.full_since = _monotonic()
            self._kernel_sent()

    def _note_drained(self) -> None:
        """The buffer shrank: wake the writer that waits, if it is within bounds."""
        if len(self.buffer) > self.buffer_size:
            return
        self.largest = 0
        if self.thread_waiter is not None:
            self.thread_waiter.set()
        if self.full_since:
            self.full_since = 0.0
            if self._drained is not None:
                self._drained.set()

    def _progressed(self) -> None:
        """The client took bytes while the buffer stayed full: restart the clock."""
        if self.full_since:
            self.full_since = _monotonic()
            self.transport.kernel_sent()

    def _kernel_sent(self) -> bool:
        """Whether the client took bytes the kernel held (counts as progress)."""
        if self.transport.kernel_sent():
            self.full_since = _monotonic()
            return True
        return False

    def _mark_closed(self, reason: CloseReason, detail: str = "") -> None:
        self.closed = True
        self.close_reason = reason
        self.close_detail = detail
        self.stats.stream_closed(reason)
        for waiter in (self._drained, self.thread_waiter):
            if waiter is not None:
                waiter.set()
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                logger.exception(
                    "stream %d %s: a close hook failed",
                    *(self.stream_id, self.path),
                    extra=self.log_context,
                )


def broadcast(streams: Iterable[Stream], payload: bytes) -> None:
    """Hand one encoded frame to every stream in ``streams``; never waits.

    The hot path of channel fan-out: the chunk is framed once, each stream
    costs one append (sent at the loop's next turn), and a stream that lags
    past the overflow bound is closed (``OVERFLOW``), never slowing others.
    """
    framed = chunk(payload)
    size = len(framed)
    # Counted per host, in runs: the streams of one channel share a host.
    stats: Stats | None = None
    count = 0
    for stream in streams:
        if stream.closed:
            continue
        if stream.chunked:
            counted = stream.stats
            if counted is not stats:
                if stats is not None:
                    stats.wrote(count, len(payload))
                stats, count = counted, 0
            # Stream._put, inlined: this runs once per event and stream.
            buffer = stream.buffer
            if not buffer:
                stream._wake()
            buffer += framed
            stream.wrote = True
            stream.written += size
            if size > stream.largest:
                stream.largest = size
            count += 1
            if len(buffer) > CORK_BYTES or len(buffer) > stream.buffer_size:
                stream._grew()
        else:
            stream._put(payload)
        if stream.full_since:
            stream._overflowed()
    if stats is not None:
        stats.wrote(count, len(payload))
