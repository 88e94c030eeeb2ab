"""Notices when code blocks the event loop, and says which code.

Every stream of a gsse process shares one event loop: a callback that calls
an unpatched blocking function (a C driver, ``time.sleep`` from before
monkey-patching, a CPU-bound loop) freezes all of them. The watchdog makes
that visible:

- a timer in the loop records a heartbeat every ``threshold / 4`` seconds;
- a real OS thread (not a greenlet, so it runs while the loop is stuck)
  checks the heartbeat and, once it is older than ``threshold``, logs one
  warning with the stack of the loop's thread (the code that is blocking
  it) and counts it in :data:`gsse.metrics.STATS`, while the loop is still
  blocked: a loop that never runs again is still reported;
- when the loop runs again, the next heartbeat logs how long it was blocked
  (INFO) and adds that to ``loop_blocked_seconds``.

Deliberate choice: the warning is written from the watchdog thread. The
handlers' locks are gevent's (patched) locks, which a foreign thread may
take since gevent 20.12; a loop stuck forever is exactly the case that must
be logged, and it would never log from its own thread. gevent's own
``monitor_thread`` does a similar check, but prints to stderr and must be
configured before the hub starts; this one logs through :mod:`logging` and
can be started by any :class:`~gsse.Server`.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

import gevent
from gevent.monkey import get_original

from .metrics import STATS
from .settings import check_seconds

logger = logging.getLogger(__name__)

__all__ = ["Watchdog"]

_thread_ident = get_original("_thread", "get_ident")
_start_thread = get_original("_thread", "start_new_thread")
_real_sleep = get_original("time", "sleep")
_monotonic = time.monotonic


class Watchdog:
    """Logs, with the blocking stack, each time the loop stalls > ``threshold``.

    :param threshold: seconds the event loop may go without running before
        it counts as blocked (gevent's ``max_blocking_time``).

    .. versionadded:: 0.1
    """

    def __init__(self, threshold: float = 0.5) -> None:
        value = check_seconds("max_blocking_time", threshold)
        if not value:
            raise ValueError(
                f"max_blocking_time must be > 0 seconds, got {threshold!r}"
            )
        self.threshold = value
        self.interval = max(value / 4, 0.005)
        self._beat = _monotonic()
        #: When the loop last ran, set by the thread once it reported a stall.
        self._blocked: float | None = None
        self._running = False
        self._timer: Any = None
        self._loop_thread = 0

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start watching the current thread's event loop."""
        if self._running:
            return
        self._running = True
        self._loop_thread = _thread_ident()
        self._beat = _monotonic()
        # ref=False: the heartbeat alone must not keep the loop alive.
        self._timer = gevent.get_hub().loop.timer(
            self.interval, self.interval, ref=False
        )
        self._timer.start(self._heartbeat)
        _start_thread(self._watch, ())

    def stop(self) -> None:
        """Stop watching (the thread ends within one interval)."""
        self._running = False
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()

    def _heartbeat(self) -> None:
        now = _monotonic()
        blocked, self._blocked = self._blocked, None
        last, self._beat = self._beat, now
        if blocked is not None:
            duration = now - blocked
            STATS.loop_blocked_seconds += duration
            logger.info(
                "the event loop runs again after being blocked for %.3f s",
                duration,
                extra={"blocked_seconds": duration},
            )
        elif now - last > self.threshold * 4:
            # Blocked, but too briefly for the thread to catch the stack.
            logger.debug("the event loop was late by %.3f s", now - last)

    def _watch(self) -> None:
        """Runs in a real OS thread: report a stuck loop while it is stuck."""
        while self._running:
            _real_sleep(self.interval)
            beat = self._beat
            if self._blocked is not None or _monotonic() - beat <= self.threshold:
                continue
            stack = self.loop_stack()
            if self._beat != beat or not self._running:
                continue  # the loop ran meanwhile: not stuck after all
            self._blocked = beat
            STATS.loop_blocks += 1
            logger.warning(
                "the event loop has been blocked for %.3f s (threshold %.3f s);"
                " every stream stalls meanwhile. Blocking code (use"
                " gevent-friendly calls, or set_stream_callback(cb,"
                " blocking=True)):\n%s",
                _monotonic() - beat,
                self.threshold,
                stack,
                extra={"blocked_seconds": _monotonic() - beat},
            )

    def loop_stack(self) -> str:
        """The current stack of the loop's thread, formatted (from any thread)."""
        return thread_stack(self._loop_thread)


def thread_stack(ident: int) -> str:
    """The current stack of thread ``ident``, formatted, or ``(unknown)``."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "(unknown)"
    try:
        return "".join(traceback.format_stack(frame))
    finally:
        del frame
