"""Hands work from real OS threads to the gevent loop, safely.

A thread must never touch gevent objects of the loop's thread directly; it
posts a callback with ``loop.run_callback_threadsafe`` (an async watcher
wakes the loop). Writes are posted and not waited for (the loop runs them
in order, without blocking); ``close()`` waits on a real, unpatched lock
for the answer. A thread that must wait for a full buffer to drain waits in
its own thread.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import gevent
from gevent.monkey import get_original
from gevent.threadpool import ThreadPool

from .exceptions import ClientDisconnected
from .transport import Transport

T = TypeVar("T")

logger = logging.getLogger(__name__)

_allocate_lock = get_original("_thread", "allocate_lock")
_real_sleep = get_original("time", "sleep")

#: How often a thread re-checks a full buffer while it waits to send.
DRAIN_POLL = 0.005


def call_in_loop(hub: Any, func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in the loop's thread; return or raise its result."""
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

    hub.loop.run_callback_threadsafe(run)
    done.acquire()
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
    waits here as a greenlet would. A write that finds the stream closed
    when the loop runs it is reported by the thread's next writer call
    (``send_event`` or ``close``), which raises ``ClientDisconnected``.
    """
    if hub is None:
        call_in_loop(hub, transport.write, payload)  # raises: explains why
    check_not_dropped(transport)
    transport.posted += len(payload)
    hub.loop.run_callback_threadsafe(_write_in_loop, transport, payload)
    limit = transport.buffer_size
    while not transport.closed:
        if transport.full_since:
            waited = time.monotonic() - transport.full_since
            if transport.send_timeout and waited > transport.send_timeout:
                call_in_loop(hub, transport.tick, time.monotonic())
                break
        elif transport.posted - transport.applied + transport.pending <= limit:
            return
        _real_sleep(DRAIN_POLL)
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


#: The environ key of the :class:`BlockingPool` of the host.
THREADPOOL_KEY = "gsse.threadpool"

#: Threads per process when nobody says (``--threads``): gevent's own
#: default. Pool threads mostly wait on I/O or the GIL; raise it for many
#: concurrent blocking streams, lower it to cap CPU-bound work.
DEFAULT_THREADS = 10

#: The GIL switch interval once pool threads run, unless the program set
#: its own. With CPU-bound pool threads the loop's thread waits up to one
#: interval per GIL handoff, several per request: at Python's 5 ms a plain
#: GET next to four busy threads queued for over a second at 100 requests/s;
#: at 1 ms its p99 was about 50 ms, for ~8 % less CPU-bound throughput
#: (bench/RESULTS.md, thread-pool bridge).
SWITCH_INTERVAL = 0.001
_PYTHON_SWITCH_INTERVAL = 0.005


class BlockingPool:
    """A bounded pool of real OS threads for code that blocks the loop.

    Work is queued when every thread is busy: the caller's greenlet never
    waits (:meth:`submit`) or waits alone (:meth:`apply`), the loop never
    does. A full pool is logged once per burst, with how many wait.

    :param size: the most threads at once.

    .. versionadded:: 0.1
    """

    def __init__(self, size: int = DEFAULT_THREADS) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"threads must be an int of at least 1, got {size!r}")
        self.size = size
        self._pool: ThreadPool | None = None
        #: Tasks handed to a thread or waiting for one.
        self.pending = 0
        self._warned = False

    @property
    def pool(self) -> ThreadPool:
        # Created on first use, in the loop's thread, so the pool belongs to
        # the hub that serves (gevent requires it) and idle servers hold none.
        if self._pool is None:
            if sys.getswitchinterval() == _PYTHON_SWITCH_INTERVAL:
                sys.setswitchinterval(SWITCH_INTERVAL)
            self._pool = ThreadPool(self.size)
        return self._pool

    @property
    def waiting(self) -> int:
        """Tasks queued because every thread is busy."""
        return max(0, self.pending - self.size)

    def _queued(self) -> None:
        self.pending += 1
        if self.pending > self.size and not self._warned:
            self._warned = True
            logger.warning(
                "thread pool full: %d threads busy, %d task(s) waiting for one;"
                " they run as threads free up (raise --threads if this persists)",
                self.size,
                self.waiting,
            )

    def _done(self, *_: Any) -> None:
        self.pending -= 1
        if self._warned and self.pending <= self.size:
            self._warned = False
            logger.info("thread pool has free threads again")

    def apply(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` in a thread; the calling greenlet waits for it."""
        self._queued()
        try:
            return self.pool.apply(func, args)  # type: ignore[no-any-return]
        finally:
            self._done()

    def submit(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` in a thread; return at once, even when full."""
        self._queued()
        gevent.spawn_raw(self._run, func, args)

    def _run(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.pool.spawn(func, *args).rawlink(self._done)
        except BaseException:
            self._done()
            raise

    def join(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every task; return how many still run.

        A thread cannot be stopped from outside: one still running is left
        to finish on its own (pool threads never keep the process alive).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while self.pending and time.monotonic() < deadline:
            gevent.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.pending


_default_pool: BlockingPool | None = None


def default_pool() -> BlockingPool:
    """The pool of hosts that bring none (gunicorn, a plain pywsgi server)."""
    global _default_pool
    if _default_pool is None:
        _default_pool = BlockingPool()
    return _default_pool


def run_blocking(environ: Any, func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` in a real OS thread of the host's thread pool."""
    pool = (environ or {}).get(THREADPOOL_KEY) or default_pool()
    pool.submit(func, *args)
