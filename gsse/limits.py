"""Limits that keep one client from taking the server: connections, sizes, time.

gevent's ``pywsgi`` already refuses a request line of 8192 bytes or more
(``414``) and a single header line over 64 KiB (``400``), but it takes any
number of header lines and any body, waits forever for a client that
connects and sends nothing, and prints a traceback for a request with more
than 100 headers. :class:`LimitsMixin` closes those gaps in the connection
handler, before the app runs:

========================  ==========================================  =======
limit                     when it is exceeded                         status
========================  ==========================================  =======
``max_connections``       open connections, streams included          ``503``
``max_streams_per_ip``    open streams of one ``REMOTE_ADDR``         ``429``
``max_header_size``       bytes of all header lines together          ``431``
``max_header_count``      header lines                                ``431``
``max_body_size``         ``Content-Length`` (chunked: while read)    ``413``
``header_timeout``        seconds to send the request line + headers  ``408``
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

import logging
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import gevent
from gevent.pywsgi import OldMessage
from gevent.pywsgi import WSGIHandler
from werkzeug.exceptions import RequestEntityTooLarge

from .metrics import STATS
from .transport import Transport

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .registry import StreamRegistry

logger = logging.getLogger(__name__)

__all__ = ["Limits", "Limiter", "LimitsMixin", "StreamCounts"]

DEFAULT_MAX_HEADER_SIZE = 32 * 1024
DEFAULT_MAX_HEADER_COUNT = 100
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_RETRY_AFTER = 5

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
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
    :param retry_after: the ``Retry-After`` seconds of ``503`` and ``429``.

    .. versionadded:: 0.1
    """

    max_connections: int | None = None
    max_streams_per_ip: int | None = None
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_body_size: int | None = None
    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT
    retry_after: int = DEFAULT_RETRY_AFTER

    def __post_init__(self) -> None:
        _positive_int("max_connections", self.max_connections)
        _positive_int("max_streams_per_ip", self.max_streams_per_ip)
        _positive_int("max_header_size", self.max_header_size, allow_none=False)
        _positive_int("max_header_count", self.max_header_count, allow_none=False)
        _positive_int("max_body_size", self.max_body_size)
        _positive_int("retry_after", self.retry_after, allow_none=False)
        timeout = self.header_timeout
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or timeout <= 0
        ):
            raise ValueError(
                "header_timeout must be a number of seconds > 0 (or None),"
                f" got {timeout!r}"
            )


def error_response(status: int, message: str, retry_after: int | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP response, as raw bytes."""
    body = f"{message}\n".encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
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

    def track(self, transport: Transport, environ: WSGIEnvironment) -> None:
        """Count ``transport`` until it closes."""
        ip = str(environ.get("REMOTE_ADDR", ""))
        self.total += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

        def release(_: Transport) -> None:
            self.total -= 1
            left = self.per_ip.get(ip, 1) - 1
            if left > 0:
                self.per_ip[ip] = left
            else:
                self.per_ip.pop(ip, None)

        transport.on_close(release)


class Limiter:
    """The live counts one server's limits are checked against."""

    def __init__(self, limits: Limits, registry: StreamRegistry) -> None:
        self.limits = limits
        self.registry = registry
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


#: A header name: an RFC 9110 token (no spaces, no separators).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: Never in a header value: NUL, and a CR that is not part of the line end.
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00\r]")


def parse_header_lines(lines: list[bytes]) -> Any:
    """The request's header lines as the message pywsgi expects, parsed strictly.

    pywsgi hands header lines to the ``email`` package's parser, a fifth of
    a plain request's CPU; this builds the same message directly. It is
    stricter, as RFC 9112 asks of a server: a line with no colon, or with
    whitespace before it, is refused with ``400`` instead of quietly ending
    the headers (a request-smuggling vector); an obsolete folded line is
    joined to the one before with a space.
    """
    message = OldMessage()
    headers: list[tuple[str, str]] = message._headers
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if not line:
            break
        if line[0] in " \t":
            if not headers:
                raise _Refused(400, "the request headers start with a folded line")
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name) or _FORBIDDEN_IN_VALUE.search(value):
            raise _Refused(400, "a request header line is malformed")
        headers.append((name, value.strip(" \t")))
    return message


class _Refused(ValueError):
    """A request refused by a limit; pywsgi answers it as a client error."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.response = error_response(status, message, retry_after)


class HeaderTimeout(socket.timeout):
    """The client took too long to send a request (an ``OSError``)."""


class _CappedInput:
    """``wsgi.input`` for a chunked body: refuses to read past the limit."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._left = limit

    def _count(self, data: bytes) -> bytes:
        self._left -= len(data)
        if self._left < 0:
            STATS.reject(413)
            raise RequestEntityTooLarge("the request body is too large")
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._count(self._inner.read(size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._count(self._inner.readline(size))

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return [self._count(line) for line in self._inner.readlines(hint)]

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class LimitsMixin(WSGIHandler):  # type: ignore[misc]
    """Enforces :class:`Limits` in pywsgi's connection handler.

    Does nothing unless the ``WSGIServer`` has a ``limiter`` attribute (the
    gsse :class:`~gsse.Server` sets one).
    """

    _limiter: Limiter | None = None
    _counted = False
    _timer: Any = None

    def handle(self) -> None:
        limiter = self._limiter = getattr(self.server, "limiter", None)
        if limiter is None:
            super().handle()
            return
        limiter.connections += 1
        self._counted = True
        try:
            super().handle()
        finally:
            self._stop_timer()
            self.release_connection()

    def release_connection(self) -> None:
        """Stop counting this connection (its socket now belongs to a stream)."""
        if self._counted and self._limiter is not None:
            self._counted = False
            self._limiter.connections -= 1

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def read_requestline(self) -> str:
        limiter = self._limiter
        timeout = limiter.limits.header_timeout if limiter is not None else None
        if timeout:
            self._timer = gevent.Timeout.start_new(timeout, HeaderTimeout)
        try:
            line: str = super().read_requestline()
        except BaseException:
            self._stop_timer()
            raise
        if not line or not line.endswith("\n"):
            # pywsgi will not read headers for this one: EOF or 414.
            self._stop_timer()
        return line

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 (pywsgi's name)
        limiter = self._limiter
        if limiter is None:
            return super().MessageClass(fp, *args)
        limits = limiter.limits
        lines: list[bytes] = []
        size = 0
        while True:
            line = fp.readline(limits.max_header_size - size + 1)
            size += len(line)
            if size > limits.max_header_size:
                raise _Refused(431, "the request headers are too large")
            lines.append(line)
            if line in (b"\r\n", b"\n", b""):
                break
            if len(lines) > limits.max_header_count:
                raise _Refused(431, "the request has too many header lines")
        return parse_header_lines(lines)

    def read_request(self, raw_requestline: str) -> bool:
        try:
            ok: bool = super().read_request(raw_requestline)
        except HeaderTimeout:
            raise _Refused(408, "the request took too long to arrive") from None
        finally:
            self._stop_timer()
        limiter = self._limiter
        if limiter is None:
            return ok
        limits = limiter.limits
        if limiter.over_connections():
            raise _Refused(
                503, "the server is at its connection limit", limits.retry_after
            )
        body_limit = limits.max_body_size
        if body_limit is not None:
            length = self.content_length
            if length is not None and length > body_limit:
                raise _Refused(413, "the request body is too large")
        return ok

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        limiter = self._limiter
        if (
            limiter is not None
            and limiter.limits.max_body_size is not None
            and self.content_length is None
        ):
            environ["wsgi.input"] = _CappedInput(
                environ["wsgi.input"], limiter.limits.max_body_size
            )
        return environ

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, _Refused):
            STATS.reject(ex.status)
            logger.info(
                "refused a request from %s with %d: %s",
                self.client_address[0] if self.client_address else "?",
                ex.status,
                ex,
            )
            self.close_connection = True
            return (str(ex.status), ex.response)
        return super()._handle_client_error(ex)

    def refuse_stream(self) -> bool:
        """Answer ``429`` instead of a stream when its address has too many.

        Called just before a stream's headers are sent; ``True`` when it
        answered (the stream must not start).
        """
        limiter = self._limiter
        if limiter is None:
            return False
        ip = str(self.environ.get("REMOTE_ADDR", ""))
        if limiter.admit_stream(ip):
            return False
        STATS.reject(429)
        logger.info("refused a stream to %s with 429: too many open streams", ip)
        body = b"too many open streams from this address\n"
        self.start_response(
            "429 Too Many Requests",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Retry-After", str(limiter.limits.retry_after)),
                ("Connection", "close"),
            ],
        )
        self.write(body)
        self.close_connection = True
        return True
