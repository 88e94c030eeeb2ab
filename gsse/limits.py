"""Limits that keep one client from taking the server: connections, sizes, time.

gevent's ``pywsgi`` refuses a request line of 8192 bytes or more (``414``),
but takes any number of header lines and any body, and waits forever for a
client that sends slowly or nothing at all. The gsse connection handler
(:mod:`gsse.handler`) checks these limits before the app runs (the body
ones while the app reads it):

========================  ==========================================  =======
limit                     when it is exceeded                         status
========================  ==========================================  =======
``max_connections``       open connections, streams included          ``503``
``max_streams_per_ip``    open streams of one ``REMOTE_ADDR``         ``429``
``max_header_size``       bytes of all header lines together          ``431``
``max_header_count``      header lines                                ``431``
``max_body_size``         ``Content-Length`` (chunked: while read)    ``413``
``header_timeout``        seconds to send the request line + headers  ``408``
``body_idle_timeout``     seconds between two pieces of a body        ``408``
``body_timeout``          seconds to send a whole body                ``408``
========================  ==========================================  =======

``503`` and ``429`` carry ``Retry-After``, so an ``EventSource`` (which
gives up on any status but 200) can be told to come back by a wrapper, and
proxies and crawlers back off. An idle keep-alive connection that sends no
next request within ``header_timeout`` is closed silently, as nginx does.

Deliberate choices: the stream-per-IP limit is checked when a response turns
out to be a stream, just before its headers are sent (a plain request from
the same address is never refused for it); behind a proxy ``REMOTE_ADDR``
is the proxy unless a middleware such as werkzeug's ``ProxyFix`` rewrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from .stats import STATS
from .stats import Stats
from .streams import Stream

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .registry import StreamRegistry

__all__ = ["REASONS", "Limits", "Limiter", "StreamCounts", "error_response"]

DEFAULT_MAX_HEADER_SIZE = 32 * 1024
DEFAULT_MAX_HEADER_COUNT = 100
DEFAULT_HEADER_TIMEOUT = 10.0
#: 10 MiB: far above an SSE app's posts, far below what fills a server's memory.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
DEFAULT_BODY_IDLE_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_RETRY_AFTER = 5

REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def _positive_int(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive int (or None for no limit), got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one server enforces; ``None`` means no limit.

    :param max_connections: open connections, streams included (``503``).
    :param max_streams_per_ip: open streams per client address (``429``).
    :param max_header_size: bytes of all request header lines (``431``).
    :param max_header_count: request header lines (``431``).
    :param max_body_size: bytes of a request body (``413``).
    :param header_timeout: seconds a client gets to send its request line
        and headers, and an idle keep-alive connection its next request.
    :param body_idle_timeout: seconds a body may pause between two pieces.
    :param body_timeout: seconds the app may wait, in all, for a body.
    :param retry_after: the ``Retry-After`` seconds of ``503`` and ``429``.

    .. versionadded:: 0.1
    """

    max_connections: int | None = None
    max_streams_per_ip: int | None = None
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE
    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT
    retry_after: int = DEFAULT_RETRY_AFTER
    body_idle_timeout: float | None = DEFAULT_BODY_IDLE_TIMEOUT
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT

    def __post_init__(self) -> None:
        _positive_int("max_connections", self.max_connections)
        _positive_int("max_streams_per_ip", self.max_streams_per_ip)
        _positive_int("max_header_size", self.max_header_size, allow_none=False)
        _positive_int("max_header_count", self.max_header_count, allow_none=False)
        _positive_int("max_body_size", self.max_body_size)
        _positive_int("retry_after", self.retry_after, allow_none=False)
        for name in ("header_timeout", "body_idle_timeout", "body_timeout"):
            timeout = getattr(self, name)
            if timeout is not None and (
                isinstance(timeout, bool)
                or not isinstance(timeout, (int, float))
                or timeout <= 0
            ):
                raise ValueError(
                    f"{name} must be a number of seconds > 0 (or None), got {timeout!r}"
                )


def error_response(status: int, message: str, retry_after: int | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP response, as raw bytes."""
    body = f"{message}\n".encode()
    head = [
        f"HTTP/1.1 {status} {REASONS[status]}",
        "Connection: close",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class StreamCounts:
    """Open streams, in all and per client address, kept as they open and close.

    Add :meth:`track` to a registry's ``add_hooks`` (directly, or behind a
    filter for the streams of one middleware).
    """

    def __init__(self) -> None:
        self.total = 0
        self.per_ip: dict[str, int] = {}

    def of(self, ip: str) -> int:
        """Open streams from client address ``ip``."""
        return self.per_ip.get(ip, 0)

    def track(self, stream: Stream, environ: WSGIEnvironment) -> None:
        """Count ``stream`` until it closes."""
        ip = str(environ.get("REMOTE_ADDR", ""))
        self.total += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

        def release(_: Stream) -> None:
            self.total -= 1
            left = self.per_ip.get(ip, 1) - 1
            if left > 0:
                self.per_ip[ip] = left
            else:
                self.per_ip.pop(ip, None)

        stream.on_close(release)


class Limiter:
    """The live counts one server's limits are checked against."""

    def __init__(
        self, limits: Limits, registry: StreamRegistry, stats: Stats | None = None
    ) -> None:
        self.limits = limits
        self.registry = registry
        #: Where refusals are counted (the server's host's numbers).
        self.stats = STATS.counted(self) if stats is None else stats
        #: Connections in a handler (streams handed off count in the registry).
        self.connections = 0
        self.streams = StreamCounts()
        registry.add_hooks.append(self.streams.track)

    @property
    def open_connections(self) -> int:
        return self.connections + len(self.registry)

    def over_connections(self) -> bool:
        limit = self.limits.max_connections
        return limit is not None and self.open_connections > limit

    def admit_stream(self, ip: str) -> bool:
        limit = self.limits.max_streams_per_ip
        return limit is None or self.streams.of(ip) < limit
