"""Several processes on one port: gunicorn's arbiter with a gsse worker.

gunicorn forks the workers, shares the listening socket, restarts a worker
that dies and handles the signals of the master; gsse does not manage
processes itself. Each worker is gunicorn's gevent worker with its serving
part replaced: it runs a :class:`gsse.Server` on the inherited socket, so
workers get the SSE fast path, keep-alive pings, send timeouts and the
graceful shutdown of streams, exactly as ``gsse run`` without workers.

The worker class also works on its own::

    gunicorn -k gsse.workers.SSEWorker --graceful-timeout 12 myproject.web:app

It then closes streams 2 s before gunicorn's ``--graceful-timeout``, so that
gunicorn never has to kill a worker with streams still open.

Workers share nothing but the socket: each has its own streams and its own
``memory://`` broker, so channels reach every client only through a shared
broker (``--broker redis://...``).

Signals: SIGTERM, and the first SIGINT (Ctrl-C), stop gracefully in master
and workers alike; a second SIGINT is gunicorn's quick shutdown. gunicorn
itself treats the first SIGINT as a quick shutdown; gsse does not, because
Ctrl-C in a terminal should let streams end as cleanly as SIGTERM does. A
worker catches SIGTERM and SIGINT with gsse's one signal capture
(:mod:`gsse.signals`, as ``gsse run`` does) and shuts its servers down
with their host's one graceful sequence (:meth:`gsse.Server.stop`).
"""

from __future__ import annotations

import math
import os
import signal
import sys
from typing import TYPE_CHECKING
from typing import Any

import gevent
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer
from gunicorn.workers.ggevent import GeventWorker

from .binding import Address
from .config import Config
from .gctune import tune_gc
from .launch import import_app
from .launch import logger
from .launch import startup_line
from .server import Server
from .signals import ShutdownSignals

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: Seconds between the worker's heartbeats to the arbiter.
HEARTBEAT = 0.5
#: Seconds the arbiter waits beyond gsse's grace period before it kills.
SHUTDOWN_MARGIN = 2.0
#: The option ``gsse run`` hands each worker (see :class:`GsseApplication`).
OPTIONS_ATTRIBUTE = "gsse_server_options"


#: The master's signals that end a worker (see ``SSEWorker.init_signals``).
SHUTDOWN_SIGNALS = frozenset((signal.SIGTERM, signal.SIGINT, signal.SIGQUIT))


class SSEWorker(GeventWorker):  # type: ignore[misc]
    """A gunicorn worker that serves with :class:`gsse.Server`.

    .. versionadded:: 0.1
    """

    #: Tells the ``gsse.gunicorn`` hook that this worker hosts itself.
    serves_gsse = True
    #: gsse's signal capture for SIGTERM and SIGINT (see :meth:`init_signals`).
    _signals: ShutdownSignals | None = None

    def server_options(self) -> dict[str, Any]:
        """``Server`` options from ``gsse run``, or derived from gunicorn's."""
        options = dict(getattr(self.app, OPTIONS_ATTRIBUTE, {}))
        options.setdefault(
            "graceful_timeout", max(self.cfg.graceful_timeout - SHUTDOWN_MARGIN, 0.0)
        )
        return options

    def run(self) -> None:
        options = self.server_options()
        servers: list[Server] = []
        for sock in self.sockets:
            sock.setblocking(True)
            server = Server(self.wsgi, listener=sock, **options)
            if self.cfg.workers > 1:
                # Accept one connection per wake-up, so that the workers
                # woken together share new connections (as gunicorn does).
                server.wsgi.max_accept = 1
            server.start()
            servers.append(server)
        try:
            tune_gc()  # GSSE_GC, as gsse run --gc sets it (default: tuned)
        except ValueError as exc:
            self.log.error("%s; Python's garbage collector is left as it is", exc)
        while self.alive:
            self.notify()
            gevent.sleep(HEARTBEAT)
        self.log.info("worker %s: shutting down", self.pid)
        stopping = [gevent.spawn(server.stop) for server in servers]
        # Keep the heartbeat going, or the arbiter takes the worker for hung.
        while not all(greenlet.ready() for greenlet in stopping):
            self.notify()
            gevent.joinall(stopping, timeout=HEARTBEAT)

    def init_signals(self) -> None:
        # Until now this process ran the master's handlers, inherited by
        # fork; they only queue a signal for the master's loop, which runs in
        # the master. A SIGTERM or SIGINT sent while the worker booted was
        # lost, and the worker served on until it was killed. Hand the
        # shutdown signals queued meanwhile to the worker's own handlers.
        inherited = signal.getsignal(signal.SIGTERM)
        queued = getattr(getattr(inherited, "__self__", None), "SIG_QUEUE", None)
        super().init_signals()
        # SIGTERM and SIGINT (Ctrl-C reaches every process of the terminal's
        # group) shut down gracefully; a second SIGINT exits at once; SIGQUIT
        # stays gunicorn's quick shutdown.
        grace = float(self.server_options().get("graceful_timeout") or 0.0)
        self._signals = ShutdownSignals(self._on_signal, grace)
        self._signals.install()
        for sig in _drain(queued):
            if sig in SHUTDOWN_SIGNALS:
                os.kill(os.getpid(), sig)

    def _on_signal(self, signum: int) -> None:
        # In the loop: run() sees it and stops the servers.
        self.alive = False


def _drain(queued: Any) -> list[Any]:
    """What the master's signal queue holds (a list in older gunicorn, a
    ``queue.SimpleQueue`` in newer ones)."""
    if queued is None:
        return []
    if isinstance(queued, list):
        return list(queued)
    items = []
    while not queued.empty():
        items.append(queued.get_nowait())
    return items


class _Logger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, writing through the standard logging setup of gsse."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class _Arbiter(Arbiter):  # type: ignore[misc]
    _halting = False

    def handle_int(self) -> None:
        # Graceful, like SIGTERM; Arbiter.stop() turns a second SIGINT
        # into its quick shutdown.
        raise StopIteration

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        # gunicorn takes every queued signal at once, and the first shutdown
        # signal ends its loop (StopIteration): a second SIGINT that arrived
        # in the same wake-up was dropped, and with it the quick shutdown
        # that stop() looks for in the queue. Put back what follows it.
        signals: list[int] = super().wait_for_signals(timeout)
        for index, signum in enumerate(signals):
            if signum in SHUTDOWN_SIGNALS:
                for later in signals[index + 1 :]:
                    self.SIG_QUEUE.put_nowait(later)
                return signals[: index + 1]
        return signals

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        self._halting = True
        super().halt(reason, exit_status)

    def reap_workers(self) -> None:
        try:
            super().reap_workers()
        except HaltServer:
            # While halting because one worker could not load the app, the
            # others failing the same way is no news; keep stopping.
            if not self._halting:
                raise


class GsseApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn's view of a ``gsse run --workers N`` config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        setattr(self, OPTIONS_ATTRIBUTE, config.server_options())
        super().__init__(prog="gsse")

    def load_config(self) -> None:
        config = self.config
        settings: dict[str, Any] = {
            # gunicorn takes the same forms as -b, unix:PATH included.
            "bind": [str(address) for address in config.addresses()],
            "workers": config.workers,
            "worker_class": f"{__name__}.SSEWorker",
            "graceful_timeout": math.ceil(config.graceful_timeout + SHUTDOWN_MARGIN),
            "backlog": config.backlog,
            "loglevel": config.log_level,
            "proc_name": "gsse",
            "logger_class": f"{__name__}._Logger",
            "when_ready": self._when_ready,
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn's control socket has one path per user: two gsse
            # commands would fight over it, and gsse does not use it.
            settings["control_socket_disable"] = True
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> WSGIApplication:
        """Import the app in the worker, after gevent has patched it."""
        app = import_app(self.config)
        if isinstance(app, int):
            # The arbiter stops (instead of forking again) on these codes.
            sys.exit(
                _Arbiter.APP_LOAD_ERROR if app == 2 else _Arbiter.WORKER_BOOT_ERROR
            )
        return app

    def _when_ready(self, arbiter: Arbiter) -> None:
        urls = []
        for listener in arbiter.LISTENERS:
            address = listener.sock.getsockname()
            if isinstance(address, tuple):
                urls.append(f"http://{Address(address[0], address[1])}")
            else:
                urls.append(f"unix:{address}")
        logger.info("%s", startup_line(self.config, ", ".join(urls)))

    def run(self) -> None:
        _Arbiter(self).run()


def serve_with_workers(config: Config) -> int:
    """Serve ``config`` with ``config.workers`` processes; return the exit code."""
    master = os.getpid()
    try:
        GsseApplication(config).run()
    except SystemExit as exc:
        if os.getpid() != master:
            raise  # a worker's own exit, on its way out of the forked stack
        code = exc.code
        if code == _Arbiter.APP_LOAD_ERROR:
            return 2  # the app could not be found
        if code == _Arbiter.WORKER_BOOT_ERROR:
            return 1  # the app failed while importing
        return code if isinstance(code, int) else 1
    return 0
