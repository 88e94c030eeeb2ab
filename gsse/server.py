"""The gsse server: gevent's pywsgi, with a fast path for SSE responses.

Connections, keep-alive and responses are gevent's well-tried ``pywsgi``;
its connection handler is gsse's (:mod:`gsse.fastpath`): requests are read
strictly and within limits (:mod:`gsse.handler`), and a response whose body
is an :class:`~gsse.stream.SSEBody` takes the fast path: headers and first
chunk in one send, then the socket belongs to the stream. Everything else
is plain WSGI.

A server owns one :class:`~gsse.host.Host` (:attr:`Server.hosting`): its
streams, thread pool, settings and numbers, shared with no other server.

Shutdown (SIGTERM, SIGINT, caught by :mod:`gsse.signals`): stop accepting,
then :meth:`Host.shutdown <gsse.host.Host.shutdown>` (tell streams, wait,
close the rest with correct HTTP framing, join the pool), then give plain
requests a second; a second SIGINT exits at once, and a loop blocked past
the graceful timeout ends the process.
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import TYPE_CHECKING
from typing import Any
from typing import NoReturn

import gevent
from gevent.event import Event as GeventEvent
from gevent.pywsgi import WSGIServer

from .binding import DEFAULT_PORT
from .config import BY_NAME
from .config import DEFAULT_BACKLOG as DEFAULT_BACKLOG  # where it was before
from .config import DEFAULT_GRACEFUL_TIMEOUT as DEFAULT_GRACEFUL_TIMEOUT
from .config import DEFAULT_HANDLERS
from .config import DEFAULT_HOST
from .config import DEFAULT_LOG_LEVEL
from .config import RUN_OPTIONS
from .config import SERVER_OPTIONS
from .fastpath import SSEHandler
from .fastpath import access_logger
from .host import HOST_KEY
from .host import Host
from .limits import DEFAULT_BODY_IDLE_TIMEOUT
from .limits import DEFAULT_BODY_TIMEOUT
from .limits import DEFAULT_HEADER_TIMEOUT
from .limits import DEFAULT_MAX_BODY_SIZE
from .limits import DEFAULT_MAX_HEADER_COUNT
from .limits import DEFAULT_MAX_HEADER_SIZE
from .limits import DEFAULT_RETRY_AFTER
from .limits import Limiter
from .limits import Limits
from .options import check_all
from .options import reject_unknown
from .pool import BlockingPool
from .registry import StreamRegistry
from .settings import StreamSettings
from .settings import check_seconds
from .signals import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # where it was before
from .signals import ShutdownSignals
from .threaded import ThreadedHandlers
from .watchdog import Watchdog

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)


class Server:
    """Serves a WSGI app with gevent, streams on the fast path.

    :param app: any WSGI application (a :class:`gsse.App`, Flask, ...).
    :param host: the address to listen on.
    :param port: the port (``0``: any free port; see :attr:`port`).
    :param ping: the keep-alive interval for streams that set none.
    :param send_timeout: seconds a client may read nothing before its
        stream is closed, for streams that set none.
    :param graceful_timeout: seconds open streams get to finish at shutdown.
    :param listener: an already bound socket to serve on instead.
    :param max_connections: open connections (streams included) before new
        requests get ``503`` with ``Retry-After``; ``None``: no limit.
    :param max_streams_per_ip: open streams per client address before new
        ones get ``429`` with ``Retry-After``; ``None``: no limit.
    :param max_header_size: bytes of request headers before ``431``.
    :param max_header_count: request header lines before ``431``.
    :param max_body_size: request body bytes before ``413`` (default 10 MiB);
        ``None``: no limit.
    :param header_timeout: seconds to send a request's line and headers
        (``408``), and for an idle keep-alive connection to send the next.
    :param body_idle_timeout: seconds a request body may pause between two
        pieces before ``408``; ``None``: no limit.
    :param body_timeout: seconds the app may wait in all for a request
        body before ``408``; ``None``: no limit.
    :param retry_after: the ``Retry-After`` seconds of ``503`` and ``429``.
    :param max_blocking_time: log (with its stack) and count every time the
        event loop is blocked longer than this many seconds; ``None``: off.
        See :mod:`gsse.watchdog`.
    :param metrics_path: serve Prometheus metrics on this path (needs
        ``gsse[metrics]``); ``None``: off. See :mod:`gsse.metrics`.
    :param threads: the size of the thread pool that runs ``blocking=True``
        callbacks (and handlers, with ``handlers="threads"``); ``None``:
        :data:`gsse.bridge.DEFAULT_THREADS`.
    :param thread_queue: work that may wait for a pool thread before new
        work gets ``503`` with ``Retry-After`` (``blocking=True`` streams
        and ``handlers="threads"`` requests, refused before their response
        starts); ``None``: 10 per thread. See :mod:`gsse.pool`.
    :param handlers: ``"greenlets"`` runs request handlers in the loop, as
        greenlets; ``"threads"`` runs them in the thread pool, for handlers
        that block without yielding (see :mod:`gsse.threaded`). Streams stay
        on the loop either way.
    :param backlog: connections the kernel queues before they are accepted
        (capped by ``net.core.somaxconn``); ignored with ``listener``.
    :param buffer_size: bytes a stream may hold unsent before its writer
        waits for the client; ``None``: 64 KiB.

    Every option, its default and its ``gsse run`` flag are declared once in
    :data:`gsse.config.OPTIONS`; values are checked against it, and an
    unknown keyword is a ``TypeError`` that suggests the nearest name.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: WSGIApplication,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        ping: float | None = None,
        send_timeout: float | None = None,
        graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
        listener: socket.socket | None = None,
        max_connections: int | None = None,
        max_streams_per_ip: int | None = None,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        header_timeout: float | None = DEFAULT_HEADER_TIMEOUT,
        body_idle_timeout: float | None = DEFAULT_BODY_IDLE_TIMEOUT,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        retry_after: int = DEFAULT_RETRY_AFTER,
        max_blocking_time: float | None = None,
        metrics_path: str | None = None,
        threads: int | None = None,
        thread_queue: int | None = None,
        handlers: str = DEFAULT_HANDLERS,
        backlog: int = DEFAULT_BACKLOG,
        buffer_size: int | None = None,
        **unknown: NoReturn,
    ) -> None:
        # Typed keywords for IDEs and mypy; their values are checked against
        # the declaration (tests/test_options.py keeps the two in step).
        reject_unknown("Server", unknown, (o.name for o in SERVER_OPTIONS))
        check_all(SERVER_OPTIONS, locals())
        #: This server's streams, thread pool, settings and numbers.
        self.hosting = Host(
            settings=StreamSettings(
                ping=ping, send_timeout=send_timeout, buffer_size=buffer_size
            ),
            threads=threads,
            thread_queue=thread_queue,
            retry_after=retry_after,
            graceful_timeout=graceful_timeout,
            native=True,
            owner=self,
        )
        self.handlers = handlers
        if handlers == "threads":
            app = ThreadedHandlers(app, self.pool)
        if metrics_path is not None:
            from .metrics import metrics_app
            from .metrics import mount

            app = mount(app, metrics_path, metrics_app(stats=self.hosting.stats))
        self.app = app
        self.limits = Limits(
            max_connections=max_connections,
            max_streams_per_ip=max_streams_per_ip,
            max_header_size=max_header_size,
            max_header_count=max_header_count,
            max_body_size=max_body_size,
            header_timeout=header_timeout,
            retry_after=retry_after,
            body_idle_timeout=body_idle_timeout,
            body_timeout=body_timeout,
        )
        # The one key of every request: pywsgi copies this into each environ.
        environ = {HOST_KEY: self.hosting.view}
        self.wsgi = WSGIServer(
            listener if listener is not None else (host, port),
            app,
            handler_class=SSEHandler,
            environ=environ,
            log=access_logger,
            error_log=logging.getLogger("gsse.error"),
            # A socket that is already listening keeps its own backlog.
            backlog=backlog if listener is None else None,
        )
        self.wsgi.limiter = Limiter(
            self.limits, self.hosting.registry, self.hosting.stats
        )
        self.watchdog: Watchdog | None = None
        if max_blocking_time is not None:
            self.watchdog = Watchdog(max_blocking_time)
        self._stopping: gevent.Greenlet | None = None
        self._stopped = GeventEvent()
        self._signals = ShutdownSignals(self._on_signal, self.graceful_timeout)

    @property
    def graceful_timeout(self) -> float:
        """Seconds open streams get to finish at shutdown."""
        return self.hosting.graceful_timeout

    @graceful_timeout.setter
    def graceful_timeout(self, seconds: float) -> None:
        self.hosting.graceful_timeout = (
            check_seconds("graceful_timeout", seconds) or 0.0
        )

    @property
    def registry(self) -> StreamRegistry:
        """The open streams (of :attr:`hosting`)."""
        return self.hosting.registry

    @property
    def pool(self) -> BlockingPool:
        """The thread pool (of :attr:`hosting`)."""
        return self.hosting.pool

    @property
    def host(self) -> str:
        return str(self.wsgi.server_host)

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        return int(self.wsgi.server_port)

    @property
    def url(self) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and start accepting in the background (returns at once)."""
        self.wsgi.start()
        if self.watchdog is not None:
            self.watchdog.start()

    def serve_forever(self, install_signals: bool = True) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`), then shut down.

        :param install_signals: handle SIGTERM and SIGINT (see
            :meth:`install_signal_handlers`) while serving.
        """
        if not self.wsgi.started:
            self.start()
        if install_signals:
            self.install_signal_handlers()
        try:
            self._stopped.wait()
        finally:
            self.remove_signal_handlers()

    def stop(self, graceful_timeout: float | None = None) -> int:
        """Shut down gracefully; return how many streams had to be closed.

        Stops accepting, then :meth:`Host.shutdown
        <gsse.host.Host.shutdown>`: sets ``writer.shutting_down`` on every
        stream, waits up to ``graceful_timeout`` seconds for them to end,
        closes the rest with correct framing and joins the thread pool; then
        gives plain requests still in flight up to a second.
        :meth:`serve_forever` returns once this is done, even if a step
        failed.
        """
        try:
            self.wsgi.close()  # stop accepting; connections in flight go on
            closed = self.hosting.shutdown(graceful_timeout)
            # Plain requests still in progress get what is left of a second.
            self.wsgi.stop(timeout=1.0)
            if self.watchdog is not None:
                self.watchdog.stop()
        finally:
            self._stopped.set()
        return closed

    def install_signal_handlers(self) -> None:
        """Shut down gracefully on SIGTERM and SIGINT; a second SIGINT exits.

        Call it from the main thread. :meth:`serve_forever` does this itself;
        call it earlier when something (a test, a supervisor) may signal as
        soon as the server is reachable. Calling it again changes nothing.
        Both work even while a callback blocks the event loop: see
        :mod:`gsse.signals`.

        .. versionadded:: 0.1
        """
        self._signals.graceful_timeout = self.graceful_timeout
        self._signals.install()

    def remove_signal_handlers(self) -> None:
        """Undo :meth:`install_signal_handlers`."""
        self._signals.remove()

    def _on_signal(self, signum: int) -> None:
        # Runs in the loop (a second SIGINT never gets here: it exits at once).
        name = signal.Signals(signum).name
        if self._stopping is not None:
            logger.info("%s received: already shutting down", name)
            return
        logger.info(
            "%s received: shutting down (open streams get %.1f s; Ctrl-C again"
            " to exit at once)",
            name,
            self.graceful_timeout,
        )
        self._stopping = gevent.spawn(self._stop_logged)

    def _stop_logged(self) -> None:
        try:
            self.stop()
        except Exception:
            logger.exception("graceful shutdown failed; exiting anyway")


def ensure_monkey_patched() -> None:
    """Patch the standard library for gevent, unless that is done already.

    Servers patch before importing the app (``gsse run`` does); a script that
    calls :func:`run` is patched here, late, which covers ``time.sleep``,
    sockets and threads looked up at call time.
    """
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def run(
    app: WSGIApplication,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    log_level: str | int = DEFAULT_LOG_LEVEL,
    **options: Any,
) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C: the script form of ``gsse run``.

    Takes every keyword of :class:`Server` (``ping=``, ``threads=``,
    ``max_body_size=``, ...); an unknown one is a ``TypeError`` that names
    it and the nearest option. Patches the standard library for gevent if
    needed and, when the program has configured no logging, logs to stderr
    at ``log_level``.

    .. versionadded:: 0.1
    """
    reject_unknown("run()", options, (o.name for o in RUN_OPTIONS))
    if isinstance(log_level, str):
        BY_NAME["log_level"].check(log_level.lower(), "run()")
    ensure_monkey_patched()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level.upper() if isinstance(log_level, str) else log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    server = Server(app, host, port, **options)
    server.start()
    logger.info("gsse serving on %s (Ctrl-C to stop)", server.url)
    server.serve_forever()
    logger.info("gsse stopped")
