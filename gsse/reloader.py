"""``gsse run --reload``: restart the server when a source file changes.

The supervisor never imports the app. It runs the same ``gsse run`` command
without ``--reload`` in a child process, watches the working directory with
watchfiles (the watcher uvicorn uses), and restarts the child after a
``.py`` file changes. A child that fails (a syntax error, say) is started
again on the next change, so a typo never ends the session.

The child runs in its own session, so Ctrl-C in the terminal reaches only
the supervisor, which then asks the child exactly once (SIGTERM) to shut
down gracefully; a second Ctrl-C is forwarded and ends the child at once.
watchfiles' own ``run_process`` is not used because its Ctrl-C handling
sends the child a second SIGINT, which gsse treats as "exit now".
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from .config import Config
from .signals import EXIT_INTERRUPTED
from .signals import ShutdownSignals
from .usage import error
from .usage import missing_for

logger = logging.getLogger(__name__)

#: Seconds a child gets beyond its grace period before it is killed.
STOP_MARGIN = 5.0
#: Milliseconds to gather changes that come together (an editor's save).
DEBOUNCE_MS = 300
#: Milliseconds between checks that the child is still alive.
POLL_MS = 500
#: Names the supervisor in the child's environment (see :func:`follow_parent`).
PARENT_ENV = "GSSE_RELOADER_PID"


def follow_parent(stop: Callable[[], object]) -> None:
    """In a child of the supervisor: call ``stop`` if the supervisor dies.

    The child runs in its own session, so nothing else would stop it when
    the supervisor is killed without a chance to clean up (SIGKILL).
    """
    parent = os.environ.pop(PARENT_ENV, "")
    if not parent.isdigit():
        return
    import gevent

    def watch() -> None:
        while os.getppid() == int(parent):
            gevent.sleep(1.0)
        logger.warning("the reloader (pid %s) is gone: shutting down", parent)
        stop()

    gevent.spawn(watch)


def run_with_reload(config: Config) -> int:
    """Serve ``config`` in a child process restarted on changes; exit code."""
    try:
        import watchfiles  # noqa: F401
    except ImportError as exc:
        error(missing_for("--reload", "reload", exc))
        return 1
    return Reloader(config).run()


class Reloader:
    """Runs ``gsse run`` in a child and restarts it when sources change."""

    def __init__(self, config: Config, root: str | None = None) -> None:
        child = dataclasses.replace(config, reload=False)
        self.command = [sys.executable, "-m", "gsse", *child.to_argv()]
        self.env = {k: v for k, v in os.environ.items() if k != "GSSE_RELOAD"}
        self.env[PARENT_ENV] = str(os.getpid())
        self.root = root or os.getcwd()
        self.stop_timeout = config.graceful_timeout + STOP_MARGIN
        self.stopping = threading.Event()
        self.interrupted = False
        self.child: subprocess.Popen[bytes] | None = None
        self._reported = False

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; return the exit code."""
        import watchfiles

        # gsse's one signal capture, without a loop: first signal graceful,
        # a second SIGINT forwarded to the child (which then exits at once).
        signals = ShutdownSignals(
            self._on_signal, self.stop_timeout, in_loop=False, on_force=self._force
        )
        signals.install()
        try:
            return self._supervise(watchfiles)
        finally:
            signals.remove()

    def _supervise(self, watchfiles: Any) -> int:
        logger.info(
            "reloader (pid %d) watching %s: the server restarts when a .py file"
            " changes",
            os.getpid(),
            self.root,
        )
        self._start()
        for changes in watchfiles.watch(
            self.root,
            watch_filter=watchfiles.PythonFilter(),
            debounce=DEBOUNCE_MS,
            stop_event=self.stopping,
            rust_timeout=POLL_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if not changes:
                self._check_child()
                continue
            names = sorted({os.path.relpath(path, self.root) for _, path in changes})
            logger.info("%s changed: restarting the server", ", ".join(names))
            self._stop_child()
            self._start()
        code = self._stop_child()
        return EXIT_INTERRUPTED if self.interrupted else code

    def _start(self) -> None:
        self.child = subprocess.Popen(
            self.command, env=self.env, start_new_session=True
        )
        self._reported = False

    def _check_child(self) -> None:
        child = self.child
        if child is None or self._reported or child.poll() is None:
            return
        self._reported = True
        logger.warning(
            "the server exited with code %s; gsse starts it again when a file changes",
            child.returncode,
        )

    def _stop_child(self) -> int:
        """Stop the child gracefully (killing it past the grace period)."""
        child = self.child
        if child is None or child.poll() is not None:
            return 0
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "the server did not stop within %.1f s; killing it", self.stop_timeout
            )
            child.kill()
            return child.wait()

    def _on_signal(self, signum: int) -> None:
        """The first SIGTERM/SIGINT (from the signal thread): stop gracefully."""
        if not self.stopping.is_set():
            logger.info("%s received: stopping the server", signal.Signals(signum).name)
            self.stopping.set()

    def _force(self, signum: int) -> None:
        """A second Ctrl-C: the child (told once already) exits at once."""
        self.interrupted = True
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)
