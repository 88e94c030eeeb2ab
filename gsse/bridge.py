"""Hands work from real OS threads to the gevent loop, safely.

A thread must never touch gevent objects of the loop's thread directly; it
posts a callback with ``loop.run_callback_threadsafe`` (an async watcher
wakes the loop). Writes are posted and not waited for (the loop runs them
in order, without blocking); ``close()`` waits on a real, unpatched lock
for the answer. A thread that must wait for a full buffer to drain blocks
on its stream's :class:`~gsse.transport.base.ThreadWaiter`, which the loop
sets when the stream drains or ends: no polling, and the loop never
blocks. Every wait of a thread is bounded by :data:`WAIT_SLICE`, after
which it looks again by itself (a safety net, not how it learns) and gives
up if the loop has stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import gevent
from gevent.monkey import get_original

from .exceptions import ClientDisconnected
from .pool import DEFAULT_THREADS as DEFAULT_THREADS
from .pool import BlockingPool as BlockingPool
from .transport import Transport
from .transport.base import ThreadWaiter

T = TypeVar("T")

logger = logging.getLogger(__name__)

_allocate_lock = get_original("_thread", "allocate_lock")
_monotonic = time.monotonic

#: The longest a thread waits for the loop before it looks again itself.
#: The loop wakes it at once when there is news; this bound only covers a
#: loop that has stopped (then the thread gives up) and send timeouts.
WAIT_SLICE = 1.0


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


def write_from_thread(transport: Transport, payload: bytes, hub: Any) -> None:
    """Write ``payload`` from a pool thread, waiting here while it is full.

    The write is posted to the loop and not waited for: a thread that waited
    for each write's answer would take two more GIL handoffs per event, and
    with hundreds of pool threads those handoffs, not the work, set the
    pace. Bytes in flight count against ``buffer_size``, so a fast thread
    waits here as a greenlet would: blocked on the stream's
    :class:`ThreadWaiter`, which the loop sets when the bytes are taken, the
    buffer drains or the stream ends (client gone, send timeout, shutdown).
    A write that finds the stream closed when the loop runs it is reported
    by the thread's next writer call (``send_event`` or ``close``), which
    raises ``ClientDisconnected``.
    """
    if hub is None:
        call_in_loop(hub, transport.write, payload)  # raises: explains why
    check_not_dropped(transport)
    waiter = transport.thread_waiter
    if waiter is None:
        # Published before the first check, so no word from the loop is lost.
        waiter = transport.thread_waiter = ThreadWaiter()
    transport.posted += len(payload)
    hub.loop.run_callback_threadsafe(_write_in_loop, transport, payload)
    limit = transport.buffer_size
    while not transport.closed:
        if transport.posted - transport.applied + transport.pending <= limit:
            return
        timeout = WAIT_SLICE
        full_since = transport.full_since
        if full_since and transport.send_timeout:
            left = full_since + transport.send_timeout - _monotonic()
            if left <= 0:
                # Aborts the stream, or counts bytes the kernel sent as progress.
                call_in_loop(hub, transport.tick, _monotonic())
                if transport.closed or transport.full_since != full_since:
                    continue
            else:
                timeout = min(timeout, left)
        if not waiter.wait(timeout) and loop_stopped(hub):
            raise ClientDisconnected("stream closed: the event loop has stopped")
    check_not_dropped(transport)  # the stream ended while this thread waited


def check_not_dropped(transport: Transport) -> None:
    """Raise if the stream is closed or a posted write was lost to its end."""
    if transport.closed or transport.dropped:
        raise ClientDisconnected(f"stream closed: {transport.close_reason}")


def _write_in_loop(transport: Transport, payload: bytes) -> None:
    try:
        transport.write(payload)
    except ClientDisconnected:
        transport.dropped = True  # the thread's next call raises
    finally:
        transport.applied += len(payload)
        waiter = transport.thread_waiter
        if (
            waiter is not None
            and transport.posted - transport.applied + transport.pending
            <= transport.buffer_size
        ):
            waiter.set()
