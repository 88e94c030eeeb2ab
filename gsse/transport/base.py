"""The part of a stream both transports share: limits, keep-alive, close.

A :class:`Transport` holds a stream's state (open or closed and why, its
id and path for logs), enforces ``buffer_size`` and ``send_timeout``,
sends the keep-alive tick, and calls the close hooks once. Subclasses say
where the bytes go (:mod:`.socket_transport`, :mod:`.queue_transport`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from gevent.event import Event as GeventEvent
from gevent.monkey import get_original

from ..exceptions import ClientDisconnected
from ..exceptions import CloseReason
from ..settings import ResolvedSettings
from ..stats import STATS
from ..stats import Stats
from ..wire import PING

#: The name docs/operations.md gives for stream ends, whichever module logs.
logger = logging.getLogger("gsse.transport")

#: A non-waiting producer may overshoot ``buffer_size`` this many times over.
OVERFLOW_FACTOR = 16

_monotonic = time.monotonic
_stream_ids = itertools.count(1)
_allocate_lock = get_original("_thread", "allocate_lock")

CloseHook = Callable[["Transport"], None]


class ThreadWaiter:
    """A pool thread's wait for the loop's word that a stream moved on.

    A real, unpatched lock used as a one-token signal: the thread blocks in
    :meth:`wait` (no polling); the loop calls :meth:`set` when the stream
    drains or ends, which never blocks it. A :meth:`set` before the wait is
    kept, so a word between the thread's check and its wait is not lost.
    """

    __slots__ = ("_lock", "waits")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()
        #: How many times a thread blocked here (wake-ups, or bounds run out).
        self.waits = 0

    def set(self) -> None:
        """Wake the waiting thread, or the next one to wait (never blocks)."""
        lock = self._lock
        if lock.locked():
            try:
                lock.release()
            except RuntimeError:  # released by another waker meanwhile
                pass

    def wait(self, timeout: float) -> bool:
        """Block this thread until :meth:`set` or ``timeout`` s; ``True`` if set."""
        self.waits += 1
        return bool(self._lock.acquire(True, max(0.0, timeout)))


class Transport:
    """What both transports share: state, limits, keep-alive, close hooks."""

    __slots__ = (
        "stats",
        "closed",
        "close_reason",
        "close_detail",
        "ping",
        "send_timeout",
        "buffer_size",
        "wrote",
        "ping_at",
        "full_since",
        "largest",
        "_hooks",
        "_drained",
        "stream_id",
        "path",
        "posted",
        "applied",
        "dropped",
        "written",
        "thread_waiter",
        "__weakref__",
    )

    def __init__(self, settings: ResolvedSettings, stats: Stats | None = None) -> None:
        #: Where this stream is counted: its host's numbers (a stream made
        #: alone, as in a unit test, counts as a host of its own).
        self.stats = stats if stats is not None else STATS.counted(self)
        self.closed = False
        #: Why the stream ended (``None`` while open), and what varies beside
        #: the reason (an error's text), for the log only.
        self.close_reason: CloseReason | None = None
        self.close_detail = ""
        self.ping = settings.ping
        self.send_timeout = settings.send_timeout
        self.buffer_size = settings.buffer_size
        #: Set by every write; the keep-alive tick clears it.
        self.wrote = False
        #: The first keep-alive is due one full interval after the stream opens.
        self.ping_at = _monotonic() + self.ping
        #: When the buffer went over ``buffer_size``, or the client last took
        #: bytes while it stayed over (0.0: it is not over).
        self.full_since = 0.0
        #: The largest write since the buffer was last within ``buffer_size``.
        self.largest = 0
        self._hooks: list[CloseHook] = []
        self._drained: GeventEvent | None = None
        #: For log records and metrics: a process-unique number, the path.
        self.stream_id = next(_stream_ids)
        self.path = ""
        #: Bytes pool threads posted to the loop, and bytes the loop has
        #: taken (each written by one side only); the difference is in flight.
        self.posted = 0
        self.applied = 0
        #: A write posted from a thread found the stream closed.
        self.dropped = False
        #: Bytes this stream wrote to its connection (framing included).
        self.written = 0
        #: Set by a pool thread that writes here (see :mod:`gsse.bridge`);
        #: the loop wakes it when the stream drains or ends.
        self.thread_waiter: ThreadWaiter | None = None
        self.stats.streams_opened += 1

    @property
    def close_text(self) -> str:
        """Why the stream ended, in the log's words (``""`` while open)."""
        reason = self.close_reason
        return "" if reason is None else reason.describe(self.close_detail)

    @property
    def log_context(self) -> dict[str, object]:
        """``extra=`` for log records about this stream."""
        return {"stream_id": self.stream_id, "path": self.path}

    # -- what subclasses provide -------------------------------------------
    @property
    def pending(self) -> int:
        """Bytes accepted but not yet handed to the socket or host."""
        raise NotImplementedError

    def write(self, payload: bytes, framed: bytes | None = None) -> None:
        """Queue or send ``payload`` without blocking.

        :param framed: ``payload`` already framed as an HTTP chunk, when the
            caller shares one framing among many streams (broadcast).
        :raises ClientDisconnected: the stream has ended.
        """
        raise NotImplementedError

    def close(
        self, reason: CloseReason = CloseReason.CLOSED_BY_APP, detail: str = ""
    ) -> None:
        """End the stream cleanly: flush what is buffered, then the end.

        :param reason: why, for the access log and the metrics.
        :param detail: what varies beside ``reason`` (the log prints it).
        """
        raise NotImplementedError

    def _release(self) -> None:
        """Drop OS resources at once (socket, watchers)."""
        raise NotImplementedError

    # -- shared behaviour ---------------------------------------------------
    @property
    def full(self) -> bool:
        return self.pending > self.buffer_size

    def on_close(self, hook: CloseHook) -> None:
        """Call ``hook(transport)`` once when the stream ends, for any reason."""
        if self.closed:
            hook(self)
        else:
            self._hooks.append(hook)

    def abort(self, reason: CloseReason | str, detail: str = "") -> None:
        """End the stream now, dropping anything unsent.

        :param reason: why; free text (from code outside gsse) is counted as
            :attr:`CloseReason.OTHER`, with the text as the detail.
        """
        if not self.closed:
            if not isinstance(reason, CloseReason):
                reason, detail = CloseReason.OTHER, str(reason)
            self._mark_closed(reason, detail)
        self._release()

    def wait_drained(self) -> None:
        """Block this greenlet while the buffer is full (backpressure).

        :raises ClientDisconnected: the stream ended, or stayed full for
            ``send_timeout`` seconds (then it is aborted).
        """
        while self.full and not self.closed:
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

    def tick(self, now: float) -> None:
        """Periodic duties: send-timeout enforcement and keep-alive pings."""
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
            try:
                self.write(PING)
                self.stats.pings += 1
            except ClientDisconnected:
                pass

    def _send_timed_out(self) -> None:
        logger.info(
            "stream %d %s: closing, its client read nothing for %.1f s"
            " (%d bytes unsent)",
            self.stream_id,
            self.path,
            self.send_timeout,
            self.pending,
            extra=self.log_context,
        )
        self.abort(CloseReason.SEND_TIMEOUT)

    def _note_buffered(self) -> None:
        """Book-keeping after bytes were left in the buffer."""
        if not self.full_since and self.pending > self.buffer_size:
            self.full_since = _monotonic()
            self._kernel_sent()

    def _kernel_sent(self) -> bool:
        """Whether the client took bytes the kernel held since last asked.

        The kernel's send buffer (megabytes on loopback) may hide a client
        that reads slowly but steadily: the socket turns writable only once
        much of it has gone. If so, this counts as progress now.
        """
        return False

    def abort_if_overflowed(self) -> bool:
        """For producers that never wait (channel fan-out): drop a lagging client."""
        if self.pending <= OVERFLOW_FACTOR * self.buffer_size + self.largest:
            return False
        logger.info(
            "stream %d %s: closing, its client reads too slowly (%d bytes unsent)",
            self.stream_id,
            self.path,
            self.pending,
            extra=self.log_context,
        )
        self.abort(CloseReason.OVERFLOW, "the client reads too slowly")
        return True

    def _note_drained(self) -> None:
        """Book-keeping after the buffer shrank."""
        if self.pending > self.buffer_size:
            return
        self.largest = 0
        if self.thread_waiter is not None:
            self.thread_waiter.set()
        if self.full_since:
            self.full_since = 0.0
            if self._drained is not None:
                self._drained.set()

    def _mark_closed(self, reason: CloseReason, detail: str = "") -> None:
        self.closed = True
        self.close_reason = reason
        self.close_detail = detail
        self.stats.stream_closed(reason)
        if self._drained is not None:
            self._drained.set()
        if self.thread_waiter is not None:
            self.thread_waiter.set()
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                logger.exception(
                    "stream %d %s: a close hook failed",
                    self.stream_id,
                    self.path,
                    extra=self.log_context,
                )
