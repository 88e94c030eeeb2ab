"""The thread pool that runs blocking work: bounded threads, bounded queue.

One :class:`BlockingPool` per host (:class:`gsse.host.Host`) runs
``blocking=True`` stream callbacks and, with ``handlers="threads"``,
request handlers. Deliberate choices:

- threads are handed out in arrival order by a gevent semaphore in the
  loop, so the loop decides, just before a task gets its thread, whether
  its client is still there: work for a client that left is skipped, not
  run (100 clients that hung up at once used to hold a real request up
  for seconds);
- the queue is bounded (``thread_queue``): past it, new work is refused
  with :class:`PoolFull` and answered ``503`` with ``Retry-After`` before
  its response starts, instead of waiting without end;
- a full pool, a full queue and work that waited over :data:`SLOW_WAIT`
  seconds are logged, rate-limited.

Cross-thread calls (a pool thread writing to a stream) are in
:mod:`gsse.bridge`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import gevent
from gevent.event import Event as GeventEvent
from gevent.lock import Semaphore
from gevent.monkey import get_original
from gevent.threadpool import ThreadPool

from .stats import STATS
from .stats import Stats

T = TypeVar("T")

logger = logging.getLogger(__name__)

__all__ = ["BlockingPool", "ClientGone", "PoolFull"]

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
_allocate_lock = get_original("_thread", "allocate_lock")


class _SwitchInterval:
    """The process-wide GIL switch interval, lent to the pools that run.

    The first pool to start threads lowers it to :data:`SWITCH_INTERVAL`
    (unless the program set its own); the last one to be joined puts back
    what it was (unless the program changed it meanwhile). Pools of several
    servers in one process share the setting without undoing each other's.
    """

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self.holders = 0
        #: What to put back, or ``None`` when nothing was changed.
        self.previous: float | None = None

    def take(self) -> None:
        with self._lock:
            self.holders += 1
            if self.holders == 1:
                current = sys.getswitchinterval()
                if current == _PYTHON_SWITCH_INTERVAL:
                    self.previous = current
                    sys.setswitchinterval(SWITCH_INTERVAL)

    def give_back(self) -> None:
        with self._lock:
            self.holders -= 1
            if self.holders == 0 and self.previous is not None:
                if sys.getswitchinterval() == SWITCH_INTERVAL:
                    sys.setswitchinterval(self.previous)
                self.previous = None


_switch_interval = _SwitchInterval()


#: Tasks that may wait for a thread, per thread, when nobody says
#: (``thread_queue``): 100 with the default 10 threads.
QUEUE_PER_THREAD = 10
#: Work that waited longer than this for a thread is logged (rate-limited).
SLOW_WAIT = 1.0
#: At most one "waited" or "queue full" warning per this many seconds.
LOG_EVERY = 10.0

#: The body of the ``503`` a full queue answers with.
BUSY_BODY = b"the server is busy: every worker thread is taken; retry later\n"


class PoolFull(Exception):
    """The pool's queue is full: the work was not queued (answer ``503``)."""


class ClientGone(Exception):
    """The work's client left while it waited for a thread: it was skipped."""


class BlockingPool:
    """A bounded pool of real OS threads for code that blocks the loop.

    Work is queued when every thread is busy: the caller's greenlet never
    waits (:meth:`submit`) or waits alone (:meth:`apply`), the loop never
    does. The queue is bounded: past ``max_queue`` waiting tasks, new work
    is refused with :class:`PoolFull` (the server answers ``503`` with
    ``Retry-After``). Work whose client left while it waited is skipped
    when a thread frees up. A full pool is logged once per burst, and work
    that waited over :data:`SLOW_WAIT` seconds is logged (rate-limited).

    :param size: the most threads at once.
    :param max_queue: the most tasks waiting for a thread; ``None``:
        :data:`QUEUE_PER_THREAD` per thread.
    :param retry_after: the ``Retry-After`` seconds of a refusal.
    :param stats: where refusals are counted (the host's numbers); ``None``:
        numbers of its own.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        size: int = DEFAULT_THREADS,
        max_queue: int | None = None,
        retry_after: int = 5,
        stats: Stats | None = None,
    ) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"threads must be an int of at least 1, got {size!r}")
        if max_queue is None:
            max_queue = QUEUE_PER_THREAD * size
        if (
            not isinstance(max_queue, int)
            or isinstance(max_queue, bool)
            or max_queue < 0
        ):
            raise ValueError(
                f"thread_queue must be an int of at least 0, got {max_queue!r}"
            )
        self.size = size
        self.max_queue = max_queue
        self.stats = STATS.counted(self) if stats is None else stats
        self.retry_after = retry_after
        self._pool: ThreadPool | None = None
        #: Free threads, handed out in arrival order (FIFO).
        self._slots = Semaphore(size)
        #: Tasks handed to a thread or waiting for one.
        self.pending = 0
        #: Set while :attr:`pending` is 0 (what :meth:`join` waits for).
        self._idle = GeventEvent()
        self._idle.set()
        #: Tasks skipped because their client left while they waited.
        self.skipped = 0
        #: Tasks refused because the queue was full.
        self.refused = 0
        self._warned = False
        self._last_log = -LOG_EVERY
        #: This pool holds the lowered switch interval (see :meth:`join`).
        self._interval_held = False

    @property
    def pool(self) -> ThreadPool:
        # Created on first use, in the loop's thread, so the pool belongs to
        # the hub that serves (gevent requires it) and idle servers hold none.
        if not self._interval_held:
            self._interval_held = True
            _switch_interval.take()
        if self._pool is None:
            self._pool = ThreadPool(self.size)
        return self._pool

    @property
    def waiting(self) -> int:
        """Tasks queued because every thread is busy."""
        return max(0, self.pending - self.size)

    @property
    def full(self) -> bool:
        """True when new work would be refused: every thread busy, queue full."""
        return self.pending >= self.size + self.max_queue

    def _rate_limited(self) -> bool:
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY:
            return True
        self._last_log = now
        return False

    def refuse(self) -> None:
        """Count (and log, rate-limited) work refused because the queue is full."""
        self.refused += 1
        self.stats.reject(503)
        if not self._rate_limited():
            logger.warning(
                "thread pool queue full (%d threads busy, %d task(s) waiting):"
                " refusing new work with 503 (%d refused so far; raise"
                " --threads or thread_queue if this persists)",
                self.size,
                self.waiting,
                self.refused,
            )

    def _queued(self, bounded: bool) -> float:
        if bounded and self.full:
            self.refuse()
            raise PoolFull(f"{self.waiting} tasks already wait for a thread")
        self.pending += 1
        self._idle.clear()
        if self.pending > self.size and not self._warned:
            self._warned = True
            logger.warning(
                "thread pool full: %d threads busy, %d task(s) waiting for one;"
                " they run as threads free up (raise --threads if this persists)",
                self.size,
                self.waiting,
            )
        return time.monotonic()

    def _done(self, *_: Any) -> None:
        self.pending -= 1
        if not self.pending:
            self._idle.set()
        if self._warned and self.pending <= self.size:
            self._warned = False
            logger.info("thread pool has free threads again")

    def _take_thread(self, queued_at: float, alive: Callable[[], bool] | None) -> None:
        """Wait in line for a thread; raise :class:`ClientGone` if skipped."""
        self._slots.acquire()
        waited = time.monotonic() - queued_at
        if waited > SLOW_WAIT and not self._rate_limited():
            logger.warning(
                "work waited %.1f s for a pool thread (%d threads busy, %d"
                " task(s) still waiting, queue bound %d); raise --threads if"
                " this persists",
                waited,
                self.size,
                self.waiting,
                self.max_queue,
            )
        try:
            gone = alive is not None and not alive()
        except BaseException:
            self._slots.release()
            raise
        if gone:
            self._slots.release()
            self.skipped += 1
            logger.debug("skipped queued work: its client left while it waited")
            raise ClientGone("the client left while the work waited for a thread")

    def apply(
        self,
        func: Callable[..., T],
        *args: Any,
        alive: Callable[[], bool] | None = None,
        bounded: bool = True,
    ) -> T:
        """Run ``func(*args)`` in a thread; the calling greenlet waits for it.

        :param alive: called in the loop when a thread is free; ``False``
            skips the work (:class:`ClientGone`).
        :param bounded: refuse work past ``max_queue`` (:class:`PoolFull`);
            ``False`` for the rest of work already admitted (a response body
            whose headers are out).
        :raises PoolFull: the queue is full; nothing was queued.
        """
        queued_at = self._queued(bounded)
        try:
            self._take_thread(queued_at, alive)
            try:
                return self.pool.apply(func, args)  # type: ignore[no-any-return]
            finally:
                self._slots.release()
        finally:
            self._done()

    def submit(
        self,
        func: Callable[..., Any],
        *args: Any,
        alive: Callable[[], bool] | None = None,
        bounded: bool = True,
    ) -> None:
        """Run ``func(*args)`` in a thread; return at once, even when all busy.

        :param alive: called in the loop when a thread is free; ``False``
            skips the work.
        :param bounded: refuse work past ``max_queue`` (:class:`PoolFull`);
            ``False`` for work admitted earlier (a stream whose headers are
            out, checked with :attr:`full` before them).
        :raises PoolFull: the queue is full; nothing was queued.
        """
        queued_at = self._queued(bounded)
        gevent.spawn_raw(self._run, func, args, queued_at, alive)

    def _run(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        queued_at: float,
        alive: Callable[[], bool] | None,
    ) -> None:
        try:
            self._take_thread(queued_at, alive)
        except ClientGone:
            self._done()
            return
        except BaseException:
            self._done()
            raise
        try:
            self.pool.spawn(func, *args).rawlink(self._finished)
        except BaseException:
            self._finished()
            raise

    def _finished(self, *_: Any) -> None:
        self._slots.release()
        self._done()

    def join(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every task; return how many still run.

        The end of the pool's service (its host's shutdown): the GIL switch
        interval its threads lowered is put back as the program had it. A
        thread cannot be stopped from outside: one still running is left to
        finish on its own (pool threads never keep the process alive). Work
        submitted later starts threads again and lowers the interval again.
        """
        self._idle.wait(max(0.0, timeout))
        self._give_back_interval()
        return self.pending

    def _give_back_interval(self) -> None:
        if self._interval_held:
            self._interval_held = False
            _switch_interval.give_back()

    def close(self) -> None:
        """End the pool: no thread stays behind once its work is done.

        Gives the switch interval back now, and ends the threads as soon as
        what still runs is done (a thread cannot be stopped from outside).
        The pool may be used again afterwards; it then starts over.
        """
        self._give_back_interval()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not self.pending:
            pool.kill()
            return

        def kill_when_idle() -> None:
            self._idle.wait()
            pool.kill()

        gevent.spawn(kill_when_idle)
