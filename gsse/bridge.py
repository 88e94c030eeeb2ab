"""Hands work from real OS threads to the gevent loop, safely.

A thread must never touch gevent objects of the loop's thread directly; it
posts a callback with ``loop.run_callback_threadsafe`` (an async watcher
wakes the loop). Writes are posted and not waited for (the loop runs them
in order, without blocking); ``close()`` waits on a real, unpatched lock
for the answer. A thread that must wait for a full buffer to drain blocks
on its stream's :class:`ThreadWaiter`, which the loop sets when the stream
drains or ends: no polling, and the loop never blocks (the write itself is
:meth:`gsse.streams.Stream.send_from_thread`). Every wait of a thread is
bounded by :data:`WAIT_SLICE`, after which it looks again by itself (a
safety net, not how it learns) and gives up if the loop has stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

import gevent
from gevent.monkey import get_original

from .exceptions import ClientDisconnected
from .pool import DEFAULT_THREADS as DEFAULT_THREADS
from .pool import BlockingPool as BlockingPool

if TYPE_CHECKING:
    from .streams import Stream

T = TypeVar("T")

logger = logging.getLogger(__name__)

_allocate_lock = get_original("_thread", "allocate_lock")
_monotonic = time.monotonic

#: The longest a thread waits for the loop before it looks again itself.
#: The loop wakes it at once when there is news; this bound only covers a
#: loop that has stopped (then the thread gives up) and send timeouts.
WAIT_SLICE = 1.0


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


def loop_stopped(hub: Any) -> bool:
    """Whether ``hub``'s loop is gone, so nothing it was asked will run."""
    return getattr(hub, "loop", None) is None or bool(getattr(hub, "dead", False))


def call_in_loop(hub: Any, func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in the loop's thread; return or raise its result.

    ``func`` runs as a loop callback, in the hub, where nothing may wait:
    use :func:`call_in_greenlet` for ``func`` that may wait on I/O.
    """
    return _call(hub, func, args, spawn=False)


def call_in_greenlet(hub: Any, func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in a new greenlet of the loop's thread; return it.

    For ``func`` that may wait on the loop (a socket read or write).
    """
    return _call(hub, func, args, spawn=True)


def _call(hub: Any, func: Callable[..., T], args: tuple[Any, ...], spawn: bool) -> T:
    if hub is None:
        raise RuntimeError(
            "this writer belongs to an event loop in another thread and cannot"
            " be used from here; use set_stream_callback(cb, blocking=True)"
        )
    done = _allocate_lock()
    done.acquire()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, func(*args)))
        except BaseException as exc:  # handed back to the calling thread
            outcome.append((False, exc))
        finally:
            done.release()

    if spawn:
        hub.loop.run_callback_threadsafe(gevent.spawn_raw, run)
    else:
        hub.loop.run_callback_threadsafe(run)
    while not done.acquire(True, WAIT_SLICE):
        if loop_stopped(hub):
            raise ClientDisconnected("stream closed: the event loop has stopped")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def send_from_thread(stream: Stream, payload: bytes, hub: Any) -> None:
    """``stream.send(payload)`` from a pool thread: posted to ``hub``'s loop.

    The write is not waited for: a thread that waited for each write's
    answer would take two more GIL handoffs per event, and with hundreds of
    pool threads those handoffs, not the work, set the pace. The loop takes
    it with :meth:`Stream.put_posted <gsse.streams.Stream.put_posted>`.
    Bytes in flight count against ``buffer_size``, so a fast thread waits
    here as a greenlet would: blocked on the stream's :class:`ThreadWaiter`,
    which the loop sets when the buffer drains or the stream ends. A write
    that finds the stream closed when the loop runs it is reported by the
    thread's next writer call, which raises ``ClientDisconnected``.
    """
    if hub is None:
        call_in_loop(hub, stream.send, payload)  # raises: explains why
    check_not_dropped(stream)
    stream.posted += len(payload)
    hub.loop.run_callback_threadsafe(stream.put_posted, payload)
    limit = stream.buffer_size
    waiter: ThreadWaiter | None = None
    while not stream.closed:
        if stream.posted - stream.applied + stream.pending <= limit:
            return
        if waiter is None:
            # Made only once the thread must wait (most writes never do), and
            # published before the next check: no word from the loop is lost.
            waiter = stream.thread_waiter
            if waiter is None:
                waiter = stream.thread_waiter = ThreadWaiter()
            continue
        timeout = WAIT_SLICE
        full_since = stream.full_since
        if full_since and stream.send_timeout:
            left = full_since + stream.send_timeout - _monotonic()
            if left <= 0:
                # Aborts the stream, or counts bytes the kernel sent as progress.
                call_in_loop(hub, stream.keep_alive, _monotonic())
                if stream.closed or stream.full_since != full_since:
                    continue
            else:
                timeout = min(timeout, left)
        if not waiter.wait(timeout) and loop_stopped(hub):
            raise ClientDisconnected("stream closed: the event loop has stopped")
    check_not_dropped(stream)  # the stream ended while this thread waited


def check_not_dropped(stream: Stream) -> None:
    """Raise if the stream is closed or a write posted from a thread was lost."""
    if stream.closed or stream.dropped:
        raise ClientDisconnected(f"stream closed: {stream.close_text}")
