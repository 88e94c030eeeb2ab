"""The host: what serves a set of streams, and the one way to shut it down.

A :class:`Host` owns everything a stream needs beyond its connection: the
registry of open streams (keep-alive, send timeouts), the thread pool for
``blocking=True``, the base stream settings, the numbers for metrics, and
the process-wide side effects these cause (the GIL switch interval lowered
while pool threads run), which :meth:`Host.close` undoes.

Who makes one:

- :class:`gsse.Server` makes one per server (``gsse run``, workers);
- :class:`gsse.SSEMiddleware` makes one, used only where no server's host
  is there to join (gunicorn's gevent worker, a plain ``gevent.pywsgi``);
- ``gsse.gunicorn.post_worker_init`` makes one per gunicorn worker;
- a stream served where there is none at all (a bare Flask app under
  gevent's pywsgi) gets one of its own, which ends with it: it streams,
  but nothing limits it, counts it with others or ends it gracefully.

Two hosts share nothing, so two servers in one process count, pool and
configure their streams apart.

A request finds its host under one environ key, :data:`HOST_KEY`, as a
:class:`HostView`: the host plus what the layers the request went through
(``SSEMiddleware``, ``App``) laid over it for this request only (their
stream settings, their admission checks). The server puts its host's base
view in every environ; each layer replaces it with a view of its own.

:meth:`Host.shutdown` is the one graceful sequence, used by the server (on
its signals), gunicorn workers, the middleware's ``shutdown()`` and the
gunicorn hook: tell streams (``writer.shutting_down``), wait for them up to
the grace period, close the rest with correct framing, join the pool,
close the host.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from typing import Protocol

import gevent

from .config import DEFAULT_GRACEFUL_TIMEOUT
from .limits import DEFAULT_RETRY_AFTER
from .pool import DEFAULT_THREADS
from .pool import BlockingPool
from .registry import StreamRegistry
from .settings import StreamSettings
from .settings import check_seconds
from .stats import STATS
from .streams import Stream

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.wrappers import Response

__all__ = ["HOST_KEY", "Gate", "Host", "HostView", "view_of"]

logger = logging.getLogger(__name__)

#: The one environ key gsse sets for a request: its :class:`HostView`.
HOST_KEY = "gsse.host"

#: Seconds pool threads get at least after the streams, at shutdown.
POOL_GRACE = 1.0


class Gate(Protocol):
    """A layer's say over the streams of the requests that pass it."""

    def admit(self, environ: WSGIEnvironment) -> Response | None:
        """``None`` to let a stream start, or the refusal to send instead."""

    def track(self, stream: Stream, environ: WSGIEnvironment) -> None:
        """Called with each stream of such a request once it is open."""


class HostView:
    """What one request sees of its host; see the module docstring.

    Immutable: a layer that adds to it puts a new view in the environ, so the
    server's base view, shared by every request, is never changed.

    :param host: the host, or ``None`` where there is none (a bare app on a
        foreign server: its streams get a host of their own).
    :param settings: the stream settings laid down so far.
    :param gates: the admission checks of the layers passed, outermost first.
    """

    __slots__ = ("host", "settings", "gates", "_last")

    def __init__(
        self,
        host: Host | None,
        settings: StreamSettings,
        gates: tuple[Gate, ...] = (),
    ) -> None:
        self.host = host
        self.settings = settings
        self.gates = gates
        #: The last ``(settings, gate, view)`` of :meth:`through`: every
        #: request of a server passes the same layers with the same settings.
        self._last: tuple[StreamSettings, Gate | None, HostView] | None = None

    def through(self, settings: StreamSettings, gate: Gate | None = None) -> HostView:
        """This view, with a layer's ``settings`` laid over it (and its gate)."""
        last = self._last
        if last is not None and last[0] is settings and last[1] is gate:
            return last[2]
        merged = settings.over(self.settings)
        if gate is None and merged is self.settings:
            view = self  # nothing added
        else:
            gates = self.gates if gate is None else (*self.gates, gate)
            view = HostView(self.host, merged, gates)
        self._last = (settings, gate, view)
        return view

    def admit(self, environ: WSGIEnvironment) -> Response | None:
        """The first refusal of a gate, or ``None`` to let the stream start."""
        for gate in self.gates:
            refusal = gate.admit(environ)
            if refusal is not None:
                return refusal
        return None

    def open(self, host: Host, stream: Stream, environ: WSGIEnvironment) -> None:
        """Register a new stream with ``host`` and the gates that counted it."""
        host.registry.add(stream, environ)
        if not stream.closed:
            for gate in self.gates:
                gate.track(stream, environ)


def view_of(environ: WSGIEnvironment | None) -> HostView | None:
    """The request's :class:`HostView`, or ``None`` when no host set one."""
    if not environ:
        return None
    view = environ.get(HOST_KEY)
    return view if isinstance(view, HostView) else None


class Host:
    """Owns a set of streams: registry, pool, settings, numbers, shutdown.

    :param settings: the base settings of its streams.
    :param threads: the size of the thread pool (``None``: the default).
    :param thread_queue: work that may wait for a pool thread before new
        work gets ``503``; ``None``: 10 per thread.
    :param retry_after: the ``Retry-After`` seconds of a ``503``.
    :param graceful_timeout: seconds streams get to finish at shutdown.
    :param native: served by gsse's own server (so it can carry streams).
    :param owner: what made it (a :class:`~gsse.Server`, an
        :class:`~gsse.SSEMiddleware`, a gunicorn worker), for the curious.
    """

    def __init__(
        self,
        *,
        settings: StreamSettings | None = None,
        threads: int | None = None,
        thread_queue: int | None = None,
        retry_after: int = DEFAULT_RETRY_AFTER,
        graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
        native: bool = False,
        owner: object = None,
    ) -> None:
        self.settings = settings or StreamSettings()
        timeout = check_seconds("graceful_timeout", graceful_timeout)
        self.graceful_timeout: float = timeout or 0.0
        #: This host's numbers; they add up in :data:`gsse.stats.STATS`.
        self.stats = STATS.counted(self)
        self.registry = StreamRegistry()
        self.pool = BlockingPool(
            DEFAULT_THREADS if threads is None else threads,
            max_queue=thread_queue,
            retry_after=retry_after,
            stats=self.stats,
        )
        self.native = native
        self.owner = owner
        #: The view a request gets before any layer adds to it.
        self.view = HostView(self, self.settings)
        #: The shutdown under way or done (see :meth:`shutdown`).
        self._shutdown: gevent.Greenlet | None = None

    @property
    def shutting_down(self) -> bool:
        """``True`` once :meth:`shutdown` has begun."""
        return self.registry.shutting_down

    @property
    def open_streams(self) -> int:
        return len(self.registry)

    def shutdown(self, graceful_timeout: float | None = None) -> int:
        """Shut the streams down gracefully; return how many had to be cut.

        The one graceful sequence of gsse: set ``writer.shutting_down`` on
        every stream (new ones are refused), wait up to ``graceful_timeout``
        seconds (default: the host's) for them to end, close the rest with
        correct framing, give ``blocking=True`` callbacks what is left of
        the grace period (at least :data:`POOL_GRACE` s), then
        :meth:`close`. A second call waits for the first and returns its
        result.
        """
        if self._shutdown is None:
            timeout = check_seconds("graceful_timeout", graceful_timeout)
            if timeout is None:
                timeout = self.graceful_timeout
            self._shutdown = gevent.spawn(self._shut_down, timeout)
        closed: int = self._shutdown.get()
        return closed

    def _shut_down(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        try:
            closed = self.registry.shutdown(timeout)
            # Pool threads whose streams were closed end at their next write;
            # any still busy are left behind: a thread cannot be stopped.
            busy = self.pool.join(max(POOL_GRACE, deadline - time.monotonic()))
            if busy:
                logger.warning(
                    "%d pool thread(s) still running after the graceful timeout;"
                    " going on without them",
                    busy,
                )
        finally:
            self.close()
        return closed

    def close(self) -> None:
        """Undo this host's process-wide effects; its pool's threads end.

        :meth:`shutdown` ends with it; a host that served without one (its
        streams ended otherwise) may call it directly.
        """
        self.pool.close()

    def close_with(self, stream: Stream) -> None:
        """Close this host when ``stream`` ends (a host of one stream)."""

        def closed(_: Stream) -> None:
            self.close()

        stream.on_close(closed)


class Hosting:
    """What a server and a middleware both show of the host they made."""

    hosting: Host

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
