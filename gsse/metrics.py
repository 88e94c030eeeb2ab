"""What the server counts, and how Prometheus reads it.

The hot path only bumps plain ``int`` slots of its host's
:class:`~gsse.stats.Stats` (:mod:`gsse.stats`): a write costs two integer
additions, never a call into ``prometheus_client``. Two servers in one
process count apart (``Server(metrics_path=...)`` shows its own), while
:data:`STATS` and :func:`metrics_app` show the whole process. Broker, auth
and watchdog numbers are process-wide only (a broker serves every host).

A custom collector turns those numbers into metric families when
Prometheus scrapes, so ``prometheus_client`` (the optional extra
``gsse[metrics]``) is imported only by :func:`metrics_app` and
:func:`register`, and gsse runs without it.

Counters are per process, like every Prometheus client: with ``--workers``
each worker is scraped (or aggregated) separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

from .exceptions import CloseReason
from .stats import STATS as STATS
from .stats import ProcessStats
from .stats import Stats as Stats

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["STATS", "Stats", "cause_of", "metrics_app", "register"]


def cause_of(reason: CloseReason | str) -> str:
    """The ``cause`` label (``gsse_disconnects_total``) of a close reason.

    :param reason: a :class:`~gsse.exceptions.CloseReason`, or its value.
    """
    return _CAUSES.get(reason, "other")


_CAUSES: dict[str, str] = {reason.value: reason.cause for reason in CloseReason}


class _Collector:
    """A ``prometheus_client`` collector that reads :data:`STATS` when scraped."""

    def __init__(self, stats: Stats | ProcessStats) -> None:
        self.stats = stats

    def _process(self, name: str) -> float:
        """A process-wide number (a broker's, say), whatever the host."""
        value: float = getattr(STATS, name)
        return value

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily
        from prometheus_client.core import GaugeMetricFamily

        s = self.stats.total() if isinstance(self.stats, ProcessStats) else self.stats

        def counter(name: str, doc: str, value: float) -> Any:
            return CounterMetricFamily(f"gsse_{name}", doc, value=value)

        def gauge(name: str, doc: str, value: float) -> Any:
            return GaugeMetricFamily(f"gsse_{name}", doc, value=value)

        yield gauge("open_streams", "Streams open now.", s.open_streams)
        yield counter("streams", "Streams opened.", s.streams_opened)
        yield counter("writes", "Events and comments written to streams.", s.writes)
        yield counter("sent_bytes", "Bytes written to streams.", s.bytes)
        yield counter("pings", "Keep-alive comments sent.", s.pings)
        disconnects = CounterMetricFamily(
            "gsse_disconnects", "Streams ended, by cause.", labels=["cause"]
        )
        for cause, count in sorted(s.disconnects.items()):
            disconnects.add_metric([cause], count)
        yield disconnects
        closes = CounterMetricFamily(
            "gsse_closed_streams", "Streams ended, by reason.", labels=["reason"]
        )
        for reason in CloseReason:  # every reason, 0 until it happens
            closes.add_metric([reason.value], s.closes.get(reason, 0))
        yield closes
        yield counter(
            "send_timeouts",
            "Streams closed because the client stopped reading.",
            s.disconnects.get("send_timeout", 0),
        )
        yield counter(
            "callback_errors", "Stream callbacks that raised.", s.callback_errors
        )
        rejected = CounterMetricFamily(
            "gsse_rejected_requests", "Requests refused by a limit.", labels=["status"]
        )
        for status, count in sorted(s.rejected.items()):
            rejected.add_metric([str(status)], count)
        yield rejected
        process = self._process
        yield counter(
            "auth_denied", "Streams refused by an auth hook.", process("auth_denied")
        )
        yield counter(
            "loop_blocks", "Times the event loop was blocked.", process("loop_blocks")
        )
        yield counter(
            "loop_blocked_seconds",
            "Seconds the event loop spent blocked.",
            process("loop_blocked_seconds"),
        )
        yield counter(
            "broker_errors", "Broker operations that failed.", process("broker_errors")
        )
        yield gauge(
            "broker_lag_seconds",
            "Seconds from publish to delivery, last seen.",
            process("broker_lag"),
        )


_registered: dict[int, _Collector] = {}


def _prometheus() -> Any:
    """``prometheus_client``, or an ImportError that says what to install."""
    try:
        import prometheus_client
    except ImportError:
        raise ImportError(
            "gsse metrics need prometheus_client: pip install 'gsse[metrics]'"
        ) from None
    return prometheus_client


def register(registry: Any = None) -> None:
    """Add gsse's collector to a ``prometheus_client`` registry (once).

    :param registry: a ``CollectorRegistry``; the default is
        ``prometheus_client.REGISTRY``.
    :raises ImportError: ``prometheus_client`` is not installed; install
        ``gsse[metrics]``.
    """
    prometheus_client = _prometheus()
    target = prometheus_client.REGISTRY if registry is None else registry
    if id(target) not in _registered:
        collector = _Collector(STATS)
        target.register(collector)
        _registered[id(target)] = collector


def metrics_app(registry: Any = None, stats: Stats | None = None) -> WSGIApplication:
    """A WSGI app that serves the metrics in Prometheus' text format.

    :param registry: a ``prometheus_client.CollectorRegistry`` to serve (gsse's
        collector is added to it); the default is ``prometheus_client.REGISTRY``,
        whose gsse numbers are the whole process' (:data:`STATS`).
    :param stats: serve these numbers alone, on a registry of their own (what
        ``Server(metrics_path=...)`` does with its host's); ``registry`` must
        then be ``None``.

    Mount it on any path, e.g. with werkzeug's ``DispatcherMiddleware`` or
    ``Server(app, metrics_path="/metrics")``. It answers anyone: the counts
    (open streams, auth refusals, stalls) are worth keeping private, so
    mount it inside your app behind :class:`~gsse.auth.AuthMiddleware`, or
    keep ``metrics_path`` to a private network.

    .. versionadded:: 0.1
    """
    if stats is not None:
        if registry is not None:
            raise TypeError("metrics_app() takes registry or stats, not both")
        prometheus_client = _prometheus()
        target = prometheus_client.CollectorRegistry(auto_describe=False)
        target.register(_Collector(stats))
    else:
        register(registry)
        prometheus_client = _prometheus()
        target = prometheus_client.REGISTRY if registry is None else registry

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = prometheus_client.generate_latest(target)
        start_response(
            "200 OK",
            [
                ("Content-Type", prometheus_client.CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    return app


def mount(app: WSGIApplication, path: str, metrics: WSGIApplication) -> WSGIApplication:
    """``app``, except that ``path`` is answered by ``metrics``, unchecked.

    It runs outside ``app`` and its middleware, so no auth of the app
    applies: ``metrics_path`` is for private networks (docs/operations.md).
    """
    if not path.startswith("/"):
        raise ValueError(f"metrics_path must start with '/', got {path!r}")

    def dispatch(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == path:
            return metrics(environ, start_response)
        return app(environ, start_response)

    return dispatch
