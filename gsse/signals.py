"""SIGTERM and SIGINT, caught once for every gsse process: graceful first,
forceful when it must be.

Used by the server (:meth:`gsse.Server.install_signal_handlers`), gunicorn
workers (:class:`gsse.workers.SSEWorker` and the ``gsse.gunicorn`` hook) and
the reloader's supervisor: the first signal starts the graceful shutdown
(for a server, :meth:`gsse.host.Host.shutdown`), a second SIGINT forces.

The first SIGTERM or SIGINT asks the event loop to shut down gracefully. But
a callback that blocks the loop (a busy loop, an unpatched ``time.sleep``, a
C driver waiting on its socket) would keep that request from ever running,
and a signal handler that runs in the loop (``gevent.signal_handler``) would
never run either: only ``kill -9`` ended such a process. So:

- the signals get a stdlib handler plus :func:`signal.set_wakeup_fd`; the C
  part of Python's handler writes the signal's number to a pipe even while
  the main thread is stuck, and a real OS thread reads it;
- that thread hands the signal to the loop (``run_callback_threadsafe``),
  which starts the graceful shutdown exactly as before when the loop runs;
- a SIGINT after the first signal ends the process at once from the thread
  (exit status 130, as a shell reports an interrupt), loop blocked or not,
  or calls ``on_force`` instead where given (the reloader forwards it);
- once ``graceful_timeout`` has passed since the first signal, if the loop
  has not run for :data:`BLOCKED_AFTER` seconds, the thread logs the
  blocking stack and ends the process with status 1: the graceful shutdown
  cannot run, and waiting longer would not help.

A process without an event loop (the reloader's supervisor) passes
``in_loop=False``: ``on_signal`` is then called from the thread itself.

Not covered: C code that holds the GIL and never returns (no thread of the
process can run then); only SIGKILL ends that.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import gevent
from gevent.monkey import get_original

from .watchdog import thread_stack

logger = logging.getLogger(__name__)

__all__ = ["EXIT_FORCED", "EXIT_INTERRUPTED", "ShutdownSignals"]

_start_thread = get_original("_thread", "start_new_thread")
_thread_ident = get_original("_thread", "get_ident")
_select = get_original("select", "select")
_monotonic = get_original("time", "monotonic")

#: The exit status after a second SIGINT, as a shell reports an interrupt.
EXIT_INTERRUPTED = 130
#: The exit status when a blocked loop kept the graceful shutdown from running.
EXIT_FORCED = 1
#: Seconds without a heartbeat of the loop after which it counts as blocked
#: (for the forced exit only; :class:`~gsse.watchdog.Watchdog` reports less).
BLOCKED_AFTER = 1.0
#: How often the loop records that it runs, and the thread looks.
TICK = 0.25

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(signum: int, frame: Any) -> None:
    """The stdlib handler: the work is done by the thread and the loop."""


class ShutdownSignals:
    """Handles SIGTERM and SIGINT for one server; see the module docstring.

    :param on_signal: called in the loop's thread with the signal's number
        for each SIGTERM/SIGINT (starts, or notes, the graceful shutdown).
    :param graceful_timeout: seconds the graceful shutdown may take before a
        blocked loop ends the process.
    :param in_loop: hand signals to this thread's gevent loop; ``False``
        calls ``on_signal`` from the signal thread (no loop, no deadline).
    :param on_force: called (from the signal thread) for a SIGINT after the
        first signal, instead of exiting with :data:`EXIT_INTERRUPTED`.
    """

    def __init__(
        self,
        on_signal: Callable[[int], None],
        graceful_timeout: float,
        *,
        in_loop: bool = True,
        on_force: Callable[[int], None] | None = None,
    ) -> None:
        self.on_signal = on_signal
        self.graceful_timeout = graceful_timeout
        self.in_loop = in_loop
        self.on_force = on_force
        self._installed = False
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._timer: Any = None
        self._hub: Any = None
        self._beat = _monotonic()
        self._first_signal: float | None = None
        #: Signals handed to the loop that it has not run yet, with when.
        self._unhandled: list[tuple[int, float]] = []
        self._loop_thread = 0

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self) -> None:
        """Install the handlers; call it from the main thread. Idempotent."""
        if self._installed:
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            self._previous_fd = signal.set_wakeup_fd(write_fd)
        except ValueError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, _ignore)
        self._pipe = (read_fd, write_fd)
        self._installed = True
        self._loop_thread = _thread_ident()
        self._beat = _monotonic()
        self._first_signal = None
        if self.in_loop:
            self._hub = gevent.get_hub()
            # ref=False: the heartbeat alone must not keep the loop alive.
            self._timer = self._hub.loop.timer(TICK, TICK, ref=False)
            self._timer.start(self._heartbeat)
        _start_thread(self._watch, (read_fd,))

    def remove(self) -> None:
        """Restore the handlers that were there before :meth:`install`."""
        if not self._installed:
            return
        self._installed = False
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_fd)
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()
        if self._pipe is not None:
            # The thread sees end-of-file, closes the read end and ends.
            os.close(self._pipe[1])
            self._pipe = None

    def _heartbeat(self) -> None:
        self._beat = _monotonic()

    def _watch(self, read_fd: int) -> None:
        """Runs in a real OS thread: read signals, end a stuck shutdown."""
        try:
            while True:
                readable, _, _ = _select([read_fd], [], [], TICK)
                if readable:
                    try:
                        data = os.read(read_fd, 64)
                    except InterruptedError:
                        continue
                    if not data:
                        return  # removed
                    for signum in data:
                        self._received(signum)
                self._check_unhandled()
                self._check_deadline()
        except OSError as exc:
            if exc.errno != errno.EBADF:
                logger.exception("the signal thread failed")
        finally:
            try:
                os.close(read_fd)
            except OSError:
                pass

    def _received(self, signum: int) -> None:
        if signum not in SIGNALS:
            self._forward(signum)
            return
        if self._first_signal is None:
            self._first_signal = _monotonic()
        elif signum == signal.SIGINT:
            if self.on_force is not None:
                self.on_force(signum)
                return
            # The user asked twice: do not wait for streams, threads or the loop.
            logger.warning("second SIGINT: exiting at once")
            self._exit(EXIT_INTERRUPTED)
        if not self.in_loop:
            self.on_signal(signum)
            return
        self._unhandled.append((signum, _monotonic()))
        self._hub.loop.run_callback_threadsafe(self._in_loop, signum)

    def _in_loop(self, signum: int) -> None:
        self._unhandled.clear()
        self.on_signal(signum)

    def _check_unhandled(self) -> None:
        """Say so when the loop has not taken a signal for a while."""
        if not self._unhandled:
            return
        signum, since = self._unhandled[0]
        waited = _monotonic() - since
        if waited < BLOCKED_AFTER:
            return
        self._unhandled.clear()
        logger.warning(
            "%s received while the event loop is blocked (for %.1f s so far):"
            " the graceful shutdown starts when the loop runs again; past the"
            " graceful timeout (%.1f s) the process exits anyway, and a second"
            " SIGINT exits at once",
            signal.Signals(signum).name,
            _monotonic() - self._beat,
            self.graceful_timeout,
        )

    def _forward(self, signum: int) -> None:
        """Hand a signal that is not ours to the wakeup fd set before us."""
        if self._previous_fd >= 0:
            try:
                os.write(self._previous_fd, bytes([signum]))
            except OSError:
                pass

    def _check_deadline(self) -> None:
        first = self._first_signal
        if first is None or not self._installed or not self.in_loop:
            return
        now = _monotonic()
        if now - first < self.graceful_timeout:
            return
        stalled = now - self._beat
        if stalled < BLOCKED_AFTER:
            return
        logger.error(
            "the event loop has been blocked for %.1f s and the graceful timeout"
            " (%.1f s) has passed: the graceful shutdown cannot run, so the"
            " process exits now (status %d), closing every connection."
            " Blocking code:\n%s",
            stalled,
            self.graceful_timeout,
            EXIT_FORCED,
            thread_stack(self._loop_thread),
        )
        self._exit(EXIT_FORCED)

    @staticmethod
    def _exit(status: int) -> None:
        logging.shutdown()
        os._exit(status)
