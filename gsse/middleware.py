"""SSEMiddleware: the gsse server's stream features for any WSGI app, any host.

Wrap a Flask (or any WSGI) app once and its ``gsse.stream(...)`` responses
behave the same under every gevent host:

- its stream settings (``ping``, ``send_timeout``) lie over the host's, and
  its stream limits (``max_streams``, ``max_streams_per_ip``) are answered
  with ``503``/``429`` before any header, counting its own streams;
- under ``gsse run`` (or a gunicorn worker with the ``gsse.gunicorn`` hook)
  the request already has a :class:`~gsse.host.Host`: the middleware joins
  it, and its registry, thread pool and shutdown serve these streams too;
- elsewhere (gunicorn's gevent worker without the hook, a plain
  ``gevent.pywsgi`` server) the middleware's own host serves them: keep-alive
  pings, send timeouts, disconnect detection, a thread pool for
  ``blocking=True``.

The middleware never touches signals. Who serves the app shuts it down:
``gsse run`` and ``gsse.gunicorn`` do it on SIGTERM; a script that runs
its own server calls :meth:`SSEMiddleware.shutdown` (docs/flask.md).
"""

from __future__ import annotations

import inspect
import logging
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

from werkzeug.wrappers import Response

from .config import DEFAULT_GRACEFUL_TIMEOUT
from .config import server_only_options
from .host import HOST_KEY
from .host import Host
from .host import HostView
from .host import view_of
from .limits import DEFAULT_RETRY_AFTER
from .limits import Limits
from .limits import StreamCounts
from .options import reject_unknown
from .pool import BlockingPool
from .registry import StreamRegistry
from .settings import StreamSettings
from .settings import check_seconds
from .stream import REQUEST_ENVIRON
from .streams import Stream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

#: Options of the gsse server that a middleware cannot enforce, and why
#: (from the declaration of every option, :data:`gsse.config.OPTIONS`).
SERVER_ONLY_OPTIONS = server_only_options()


class SSEMiddleware:
    """Gives any WSGI app's streams the gsse server's features on any host.

    :param app: the WSGI application to wrap (Flask, Django's WSGI handler,
        a :class:`gsse.App`, ...).
    :param ping: seconds of idleness before a keep-alive comment, for
        streams that set none (``0``: off).
    :param send_timeout: seconds a client may read nothing before its
        stream is closed, for streams that set none.
    :param graceful_timeout: seconds open streams get to finish at shutdown.
    :param max_streams: open streams before new ones get ``503`` with
        ``Retry-After``; ``None``: no limit.
    :param max_streams_per_ip: open streams per client address before new
        ones get ``429`` with ``Retry-After``; ``None``: no limit.
    :param retry_after: the ``Retry-After`` seconds of ``503`` and ``429``.
    :param threads: the size of the thread pool for ``blocking=True``.
    :param thread_queue: work that may wait for a pool thread before new
        work gets ``503``; ``None``: 10 per thread.
    :param buffer_size: bytes a stream may hold unsent before its writer
        waits, for streams that set none; ``None``: the host's (64 KiB).
    :param handle_sigterm: deprecated, no effect: the middleware never
        touches signals (a ``DeprecationWarning`` says so); shut down with
        :meth:`shutdown`, ``gsse run`` or ``gsse.gunicorn``.

    Under ``gsse run`` the server's thread pool and shutdown serve these
    streams, so ``threads``, ``thread_queue`` and ``graceful_timeout`` come
    from the server (a warning says so if they were given here).

    .. versionadded:: 0.1
    .. versionchanged:: 0.3
       The middleware no longer hooks SIGTERM; ``handle_sigterm`` is
       deprecated.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        ping: float | None = None,
        send_timeout: float | None = None,
        graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
        max_streams: int | None = None,
        max_streams_per_ip: int | None = None,
        retry_after: int = DEFAULT_RETRY_AFTER,
        threads: int | None = None,
        thread_queue: int | None = None,
        buffer_size: int | None = None,
        handle_sigterm: bool | None = None,
        **server_only: Any,
    ) -> None:
        for name in server_only:
            why = SERVER_ONLY_OPTIONS.get(name)
            if why is None:
                reject_unknown("SSEMiddleware", [name], _MIDDLEWARE_OPTIONS)
            raise TypeError(
                f"{name} is an option of the gsse server, not of SSEMiddleware"
                f" ({why}); pass it to `gsse run` or gsse.Server"
            )
        if not callable(app):
            raise TypeError(f"SSEMiddleware wraps a WSGI callable, got {app!r}")
        if handle_sigterm is not None:
            warnings.warn(
                "SSEMiddleware(handle_sigterm=...) has no effect and will go:"
                " the middleware never touches signals. gsse run and the"
                " gsse.gunicorn hook shut it down on SIGTERM; under your own"
                " server call middleware.shutdown() (docs/flask.md)",
                DeprecationWarning,
                stacklevel=2,
            )
        self.app = app
        self.settings = StreamSettings(
            ping=ping, send_timeout=send_timeout, buffer_size=buffer_size
        )
        self.limits = Limits(
            max_streams_per_ip=max_streams_per_ip, retry_after=retry_after
        )
        if max_streams is not None and (
            isinstance(max_streams, bool)
            or not isinstance(max_streams, int)
            or max_streams < 1
        ):
            raise ValueError(
                f"max_streams must be a positive int (or None for no limit),"
                f" got {max_streams!r}"
            )
        self.max_streams = max_streams
        #: The host of this middleware's streams where no server brings one.
        self.hosting = Host(
            threads=threads,
            thread_queue=thread_queue,
            retry_after=retry_after,
            graceful_timeout=graceful_timeout,
            owner=self,
        )
        #: This middleware's open streams, whichever host serves them.
        self.counts = StreamCounts()
        #: The hosts of servers this middleware has served under.
        self._joined: weakref.WeakSet[Host] = weakref.WeakSet()
        #: Options given that only apply when the middleware brings its own
        #: registry; named in a warning if a gsse server turns out to own it.
        self._unused_under_server = [
            f"{name}={value!r}"
            for name, value, default in (
                ("graceful_timeout", graceful_timeout, DEFAULT_GRACEFUL_TIMEOUT),
                ("threads", threads, None),
                ("thread_queue", thread_queue, None),
            )
            if value != default
        ]

    @property
    def graceful_timeout(self) -> float:
        """Seconds this middleware's own host gives streams at shutdown."""
        return self.hosting.graceful_timeout

    @graceful_timeout.setter
    def graceful_timeout(self, seconds: float) -> None:
        self.hosting.graceful_timeout = (
            check_seconds("graceful_timeout", seconds) or 0.0
        )

    @property
    def registry(self) -> StreamRegistry:
        """The open streams of this middleware's own host."""
        return self.hosting.registry

    @property
    def pool(self) -> BlockingPool:
        """The thread pool of this middleware's own host."""
        return self.hosting.pool

    @property
    def open_streams(self) -> int:
        """This middleware's streams that are still open."""
        return self.counts.total

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        view = view_of(environ)
        if view is None:
            view = self.hosting.view  # no server below us: our own host
        elif view.host is None:
            # A layer without a host (a gsse.App) came first: ours serves.
            view = HostView(self.hosting, view.settings, view.gates)
        elif view.host is not self.hosting and view.host not in self._joined:
            self._join(view.host)
        environ[HOST_KEY] = view.through(self.settings, self)
        token = REQUEST_ENVIRON.set(environ)
        try:
            return self.app(environ, start_response)
        finally:
            REQUEST_ENVIRON.reset(token)

    def _join(self, host: Host) -> None:
        """Serve under a server's host, once: say which options do not apply."""
        self._joined.add(host)
        if self._unused_under_server:
            logger.warning(
                "SSEMiddleware serves under another host (the gsse server,"
                " or the gsse.gunicorn hook's), whose thread pool and shutdown"
                " serve the streams; %s given to the middleware do not apply"
                " (gsse run --threads/--thread-queue/--graceful-timeout set"
                " them)",
                ", ".join(self._unused_under_server),
            )

    def track(self, stream: Stream, environ: WSGIEnvironment) -> None:
        """Count a stream of a request that passed this middleware."""
        self.counts.track(stream, environ)

    def admit(self, environ: WSGIEnvironment) -> Response | None:
        """``None`` to let a stream start, or the refusal to send instead."""
        view = view_of(environ)
        host = view.host if view is not None and view.host else self.hosting
        if host.shutting_down:
            return self._refuse(environ, 503, "the server is shutting down")
        if self.max_streams is not None and self.counts.total >= self.max_streams:
            return self._refuse(
                environ, 503, "the server is at its limit of open streams"
            )
        limit = self.limits.max_streams_per_ip
        ip = str(environ.get("REMOTE_ADDR", ""))
        if limit is not None and self.counts.of(ip) >= limit:
            return self._refuse(environ, 429, "too many open streams from this address")
        return None

    def _refuse(self, environ: WSGIEnvironment, status: int, message: str) -> Response:
        view = view_of(environ)
        host = view.host if view is not None and view.host else self.hosting
        host.stats.reject(status)
        logger.info(
            "refused a stream to %s with %d: %s",
            environ.get("REMOTE_ADDR", "?"),
            status,
            message,
        )
        return Response(
            message + "\n",
            status=status,
            mimetype="text/plain",
            headers={"Retry-After": str(self.limits.retry_after)},
        )

    def shutdown(self, graceful_timeout: float | None = None) -> int:
        """End the streams of this middleware's own host; return how many were cut.

        :meth:`gsse.host.Host.shutdown`: sets ``writer.shutting_down``, waits
        up to ``graceful_timeout`` seconds (default: the middleware's) for
        streams to end, closes the rest with correct framing and gives
        ``blocking=True`` callbacks what is left of the grace period (at
        least a second). Call it from the code that runs the server (a
        signal handler, say; docs/flask.md). Under ``gsse run`` the server's
        host serves the streams and the server shuts it down.
        """
        return self.hosting.shutdown(graceful_timeout)


#: The keyword options SSEMiddleware takes, for "did you mean" suggestions.
_MIDDLEWARE_OPTIONS = [
    name
    for name, parameter in inspect.signature(SSEMiddleware).parameters.items()
    if parameter.kind == parameter.KEYWORD_ONLY
]
