"""SSEMiddleware: the gsse server's stream features for any WSGI app, any host.

Wrap a Flask (or any WSGI) app once and its ``gsse.stream(...)`` responses
behave the same under every gevent host:

- its stream settings (``ping``, ``send_timeout``) lie over the host's, and
  its stream limits (``max_streams``, ``max_streams_per_ip``) are answered
  with ``503``/``429`` before any header, counting its own streams;
- under ``gsse run`` the server already tracks streams: its registry,
  thread pool and shutdown serve the middleware's streams too;
- under gunicorn's gevent worker or a plain ``gevent.pywsgi`` server the
  middleware brings its own: a registry (keep-alive pings, send timeouts,
  disconnect detection), a thread pool for ``blocking=True``, and a
  graceful shutdown on SIGTERM.

The SIGTERM hook is chained, not taken: on the first request it serves
itself, the middleware replaces the Python SIGTERM handler the host
installed (the gunicorn worker's, say) with one hook shared by every
middleware in the process. On SIGTERM the hook tells their streams to
finish (``writer.shutting_down``), waits up to ``graceful_timeout``, closes
the rest with correct framing, and then calls the handler it replaced; when
that was the default one (a plain script), the process ends by SIGTERM, as
it would have. ``handle_sigterm=False`` turns this off;
:meth:`SSEMiddleware.shutdown` does the same on demand.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

import gevent
from werkzeug.wrappers import Response

from .bridge import DEFAULT_THREADS
from .bridge import THREADPOOL_KEY
from .bridge import BlockingPool
from .config import DEFAULT_GRACEFUL_TIMEOUT
from .config import server_only_options
from .hosts import host_can_stream
from .limits import DEFAULT_RETRY_AFTER
from .limits import Limits
from .limits import StreamCounts
from .metrics import STATS
from .options import reject_unknown
from .registry import StreamRegistry
from .settings import StreamSettings
from .settings import check_seconds
from .stream import ADMISSION_KEY
from .stream import REGISTRY_KEY
from .stream import REQUEST_ENVIRON
from .streams import Stream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

#: The environ key listing the middlewares a request went through, so each
#: counts (and limits) only its own streams in a registry it may share.
MIDDLEWARES_KEY = "gsse.middlewares"

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
    :param handle_sigterm: shut streams down gracefully on SIGTERM (see the
        module docs); ``False`` leaves signals alone.

    Under ``gsse run`` the server's thread pool and shutdown serve these
    streams, so ``threads``, ``thread_queue`` and ``graceful_timeout`` come
    from the server (a warning says so if they were given here).

    .. versionadded:: 0.1
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
        handle_sigterm: bool = True,
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
        self.app = app
        self.settings = StreamSettings(
            ping=ping, send_timeout=send_timeout, buffer_size=buffer_size
        )
        self.graceful_timeout = check_seconds("graceful_timeout", graceful_timeout)
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
        self.registry = StreamRegistry()
        #: This middleware's open streams, whichever registry tracks them.
        self.counts = StreamCounts()
        self.registry.add_hooks.append(self._count_mine)
        self._counted_in: weakref.WeakSet[StreamRegistry] = weakref.WeakSet(
            [self.registry]
        )
        self.pool = BlockingPool(
            DEFAULT_THREADS if threads is None else threads,
            max_queue=thread_queue,
            retry_after=retry_after,
        )
        self.handle_sigterm = handle_sigterm
        self._sigterm_hooked = False
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
    def open_streams(self) -> int:
        """This middleware's streams that are still open."""
        return self.counts.total

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        self.settings.apply_to(environ)
        registry = environ.get(REGISTRY_KEY)
        if registry is None:
            # No gsse server (or outer middleware) below us: bring our own.
            environ[REGISTRY_KEY] = self.registry
            environ[THREADPOOL_KEY] = self.pool
            if not self._sigterm_hooked and host_can_stream(environ):
                # Only a gevent host runs the greenlet the hook spawns.
                self._hook_sigterm()
        elif registry not in self._counted_in:
            self._count_streams_of(registry)
        environ.setdefault(MIDDLEWARES_KEY, []).append(self)
        environ.setdefault(ADMISSION_KEY, []).append(self.admit)
        token = REQUEST_ENVIRON.set(environ)
        try:
            return self.app(environ, start_response)
        finally:
            REQUEST_ENVIRON.reset(token)

    def _count_streams_of(self, registry: StreamRegistry) -> None:
        """Count this middleware's streams in a registry it does not own."""
        self._counted_in.add(registry)
        registry.add_hooks.append(self._count_mine)
        if self._unused_under_server:
            logger.warning(
                "SSEMiddleware runs under the gsse server, whose thread pool and"
                " shutdown serve the streams; %s given to the middleware do not"
                " apply (gsse run --threads/--thread-queue/--graceful-timeout"
                " set them)",
                ", ".join(self._unused_under_server),
            )

    def _count_mine(self, stream: Stream, environ: WSGIEnvironment) -> None:
        if self in environ.get(MIDDLEWARES_KEY, ()):
            self.counts.track(stream, environ)

    def admit(self, environ: WSGIEnvironment) -> Response | None:
        """``None`` to let a stream start, or the refusal to send instead."""
        registry = environ.get(REGISTRY_KEY, self.registry)
        if registry.shutting_down:
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
        STATS.reject(status)
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
        """End this middleware's streams gracefully; return how many were cut.

        Sets ``writer.shutting_down``, waits up to ``graceful_timeout``
        seconds (default: the middleware's) for streams to end, closes the
        rest with correct framing and waits what is left of the grace
        period (at least a second) for ``blocking=True`` callbacks.
        """
        timeout = (
            self.graceful_timeout if graceful_timeout is None else graceful_timeout
        )
        deadline = time.monotonic() + (timeout or 0.0)
        closed = self.registry.shutdown(timeout or 0.0)
        busy = self.pool.join(max(1.0, deadline - time.monotonic()))
        if busy:
            logger.warning(
                "%d pool thread(s) still running after the graceful timeout", busy
            )
        return closed

    def _hook_sigterm(self) -> None:
        self._sigterm_hooked = True
        if self.handle_sigterm:
            _SIGTERM.join(self)


class _SigtermHook:
    """One process-wide SIGTERM handler for every middleware that asks.

    On SIGTERM it shuts all of them down at once and only then calls the
    handler it replaced (gunicorn's, say; one that calls ``sys.exit`` can
    no longer cut the goodbyes short), or, when that was the default, ends
    the process by SIGTERM. A second SIGTERM calls the previous handler at
    once (the default: the process ends at once).
    """

    def __init__(self) -> None:
        self.middlewares: list[SSEMiddleware] = []
        self.previous: Any = None
        self.shutting_down: gevent.Greenlet | None = None

    def join(self, middleware: SSEMiddleware) -> None:
        if self.middlewares:
            if middleware not in self.middlewares:
                self.middlewares.append(middleware)
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous is signal.SIG_IGN or previous is None:
                return  # ignored on purpose, or owned by C code: leave it
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:
            # Not the main thread: signals are the host's business then.
            logger.debug("SSEMiddleware: not in the main thread; SIGTERM not hooked")
            return
        self.previous = previous
        self.middlewares.append(middleware)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self.shutting_down is None:
            logger.info(
                "SIGTERM received: ending %d open stream(s) (they get %s s)",
                sum(m.open_streams for m in self.middlewares),
                max(m.graceful_timeout or 0.0 for m in self.middlewares),
            )
            self.shutting_down = gevent.spawn(self._shut_down_then_hand_on, signum)
        else:
            self._hand_on(signum, frame)  # asked twice: do not wait

    def _shut_down_then_hand_on(self, signum: int) -> None:
        try:
            gevent.joinall([gevent.spawn(m.shutdown) for m in self.middlewares])
        except Exception:
            logger.exception("graceful shutdown of streams failed")
        self._hand_on(signum, None)

    def _hand_on(self, signum: int, frame: Any) -> None:
        if callable(self.previous):
            self.previous(signum, frame)
        elif self.previous is signal.SIG_DFL:
            logging.shutdown()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)


_SIGTERM = _SigtermHook()
#: The keyword options SSEMiddleware takes, for "did you mean" suggestions.
_MIDDLEWARE_OPTIONS = [
    name
    for name, parameter in inspect.signature(SSEMiddleware).parameters.items()
    if parameter.kind == parameter.KEYWORD_ONLY
]
