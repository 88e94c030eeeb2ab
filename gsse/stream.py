"""The SSE response: headers first, then the stream callback.

A handler never streams itself: it returns an :class:`SSEResponse` whose body
is an :class:`SSEBody`. What happens next depends on the host:

- Under the gsse server, the connection's handler sees the body, flushes the
  headers and the first chunk to the socket, hands the socket to a
  :class:`~gsse.streams.Stream` over a
  :class:`~gsse.transport.SocketTransport`, starts the callback in a new
  greenlet and ends (one greenlet per stream while the callback runs, none
  once it returns or when the stream is a channel subscription).
- Under any other WSGI host the body is an ordinary iterable: it yields a
  first non-empty chunk (gevent's pywsgi sends headers only with the first
  non-empty chunk), then starts the callback in a greenlet of its own and
  yields what it writes.

A stream stays open until it is closed: by ``writer.close()`` (or leaving
``with writer:``), by the client going away, by a send timeout, or by the
server shutting down. So a callback may hand its writer to other code and
return; a callback that raises has its stream closed, and the error is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING
from typing import Any

import gevent
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from .callbacks import StreamCallback as StreamCallback
from .callbacks import check_callback as check_callback
from .callbacks import run_callback
from .exceptions import CloseReason
from .headers import SSE_HEADERS as SSE_HEADERS
from .headers import check_headers
from .headers import stream_head
from .host import Host
from .host import HostView
from .host import view_of
from .hosts import host_can_stream
from .hosts import unsupported_host_response
from .hosts import warn_no_middleware
from .pool import BUSY_BODY
from .settings import ResolvedSettings
from .settings import StreamSettings
from .streams import Stream
from .transport import QueueTransport
from .transport import SocketTransport
from .wire import encode_retry
from .writer import SSEWriter

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

#: The first chunk when no ``retry`` is given: a comment no client shows.
PREAMBLE = b": ok\n\n"

#: The request being handled, set by :class:`~gsse.SSEMiddleware` around the
#: app (its host is under :data:`~gsse.host.HOST_KEY`). :func:`stream` needs
#: it when called, not when the response is sent: Flask turns any werkzeug
#: response into its own class, so no method of ours runs before headers.
REQUEST_ENVIRON: ContextVar[WSGIEnvironment | None] = ContextVar(
    "gsse_request_environ", default=None
)


def header_text(value: str | None) -> str | None:
    """A request header as the text the client meant: UTF-8, as browsers send.

    WSGI hands header bytes over decoded as latin-1 (PEP 3333), so an
    ``é`` arrives as ``Ã©``; the bytes are decoded again as UTF-8. A value
    that is not UTF-8 stays as the host gave it.
    """
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def stream_refusal(
    environ: WSGIEnvironment | None, blocking: bool = False
) -> Response | None:
    """What to answer instead of a stream (before any header), or ``None``.

    A host that cannot carry streams gets a ``500`` saying what to run; the
    middleware's limits may refuse with ``503``/``429``; a ``blocking``
    stream gets ``503`` while the thread pool's queue is full.
    """
    if not host_can_stream(environ):
        return unsupported_host_response(environ)
    view = view_of(environ)
    if view is None:
        return None
    if blocking and view.host is not None:
        pool = view.host.pool
        if pool.full:
            pool.refuse()
            return Response(
                BUSY_BODY,
                status=503,
                mimetype="text/plain",
                headers={"Retry-After": str(pool.retry_after)},
            )
    assert environ is not None  # it holds the view
    return view.admit(environ)


#: Tells clients (gsse.js) the stream's keep-alive interval in seconds.
PING_HEADER = "X-Gsse-Ping"


class SSEBody:
    """The body of an SSE response; see the module docstring.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "callback",
        "blocking",
        "retry",
        "settings",
        "environ",
        "head",
        "_stream",
        "_host",
    )

    def __init__(
        self,
        callback: StreamCallback,
        *,
        blocking: bool = False,
        retry: int | None = None,
        settings: StreamSettings | None = None,
    ) -> None:
        check_callback(callback)
        self.callback = callback
        self.blocking = blocking
        self.retry = retry
        self.settings = settings or StreamSettings()
        self.environ: WSGIEnvironment | None = None
        #: The response headers gsse built and checked for this stream
        #: (``None`` where another framework's response carries it).
        self.head: list[tuple[str, str]] | None = None
        self._stream: Stream | None = None
        self._host: Host | None = None

    def preamble(self) -> bytes:
        """The first chunk, which carries the headers out with it."""
        return PREAMBLE if self.retry is None else encode_retry(self.retry)

    def _context(self) -> tuple[Host, HostView, ResolvedSettings]:
        """The stream's host and view, and its settings, found once."""
        view = view_of(self.environ)
        if view is None:
            view = HostView(None, StreamSettings())
        host = view.host if view.host is not None else self._own_host()
        return host, view, self.settings.over(view.settings).resolved()

    def _own_host(self) -> Host:
        """A host of this stream's own, where nothing serves one (see gsse.host)."""
        if self._host is None:
            self._host = Host(threads=1)
        return self._host

    def _open(self, stream: Stream, host: Host, view: HostView) -> SSEWriter:
        environ = self.environ if self.environ is not None else {}
        view.open(host, stream, environ)
        if host is self._host:
            host.close_with(stream)
        last_event_id = header_text(environ.get("HTTP_LAST_EVENT_ID"))
        return SSEWriter(stream, host.registry, last_event_id)

    def _start(self, writer: SSEWriter, host: Host) -> None:
        if self.blocking:
            # Admitted before its response started (see stream_refusal), so
            # queued even past the bound; skipped if the client left.
            host.pool.submit(
                run_callback,
                self.callback,
                writer,
                alive=lambda: not writer.closed,
                bounded=False,
            )
        else:
            run_callback(self.callback, writer)

    def serve_socket(self, sock: Any, chunked: bool, head: bytes = b"") -> Stream:
        """The fast path: stream straight to ``sock``, ``head`` first (the
        response's head and first chunk, unless already sent).

        Returns at once. The callback runs in a new greenlet whose stack
        holds only the callback's own frames, so the connection's greenlet
        ends, and with it pywsgi's handler, its read buffer and the request:
        an idle callback stream holds less than half the memory it did when
        the callback ran in the connection's greenlet (bench/RESULTS.md).
        Returns the stream (the access log waits for its end).
        """
        host, view, settings = self._context()
        transport = SocketTransport(sock, chunked, host.registry.corks)
        stream = Stream(transport, settings, host.stats)
        stream.put_head(head)  # first, even if the stream ends at once
        writer = self._open(stream, host, view)
        if self.blocking:
            self._start(writer, host)  # hands it to the pool: returns at once
        else:
            gevent.spawn_raw(run_callback, self.callback, writer)
        if not stream.closed and not transport.corked:
            # After the spawn: the callback runs first at the loop's next
            # turn, and the head leaves in one send with what it writes first.
            transport.wake()
        return stream

    def __iter__(self) -> Iterator[bytes]:
        host, view, settings = self._context()
        if host is self._host:
            warn_no_middleware(self.environ)
        transport = QueueTransport()
        self._stream = Stream(transport, settings, host.stats)
        return self._iterate(self._stream, transport, host, view)

    def _iterate(
        self, stream: Stream, transport: QueueTransport, host: Host, view: HostView
    ) -> Iterator[bytes]:
        yield self.preamble()
        # The host has written the headers and the first chunk by now.
        writer = self._open(stream, host, view)
        if self.blocking:
            self._start(writer, host)
        else:
            gevent.spawn(self._start, writer, host)
        del writer  # the callback's to keep or drop (see SSEWriter.watch)
        try:
            yield from transport.drain()
        finally:
            if not stream.closed:
                stream.abort(CloseReason.CLIENT_GONE)

    def close(self) -> None:
        """Called by WSGI hosts when the response ends (PEP 3333)."""
        stream, self._stream = self._stream, None
        if stream is not None and not stream.closed:
            stream.abort(CloseReason.CLIENT_GONE)


def ping_header(body: SSEBody, environ: WSGIEnvironment) -> tuple[str, str]:
    """``X-Gsse-Ping``: gsse.js takes a stream silent for twice this long as
    stale (comments are invisible to EventSource)."""
    view = view_of(environ)
    base = view.settings if view is not None else None
    return PING_HEADER, f"{body.settings.over(base).resolved().ping:g}"


class SSEResponse(Response):
    """A ``text/event-stream`` response whose body is an :class:`SSEBody`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        body: SSEBody,
        status: int = 200,
        headers: Mapping[str, str] | Headers | None = None,
    ) -> None:
        # Users may replace the defaults; werkzeug alone would let NUL, ESC
        # and bad names through.
        super().__init__(
            body,
            status=status,
            headers=stream_head(check_headers(headers)),
            direct_passthrough=True,
        )

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        headers = super().get_wsgi_headers(environ)
        body = self.response
        if isinstance(body, SSEBody) and PING_HEADER not in headers:
            headers.add(*ping_header(body, environ))
        return headers

    def get_app_iter(self, environ: WSGIEnvironment) -> Any:
        if environ.get("REQUEST_METHOD") == "HEAD":
            return ()
        body = self.response
        assert isinstance(body, SSEBody)
        if body.environ is None:
            body.environ = environ
        return body


def stream(
    callback: StreamCallback,
    *,
    status: int = 200,
    headers: Mapping[str, str] | Headers | None = None,
    retry: int | None = None,
    ping: float | None = None,
    send_timeout: float | None = None,
    blocking: bool = False,
) -> Response:
    """A response that streams ``callback(writer)``; return it from any view.

    Under a host that cannot stream, or over a limit of
    :class:`~gsse.SSEMiddleware`, it is the refusal instead (``500``,
    ``503`` or ``429``, logged), and ``callback`` never runs.

    :param callback: called with an :class:`~gsse.SSEWriter` once the
        headers are on the wire.
    :param status: the response status.
    :param headers: extra headers (they may replace the SSE defaults); names
        must be HTTP tokens and values free of control characters but tab.
    :param retry: the client's reconnection time in ms, sent first.
    :param ping: seconds of idleness before a keep-alive comment (``0``: off).
    :param send_timeout: seconds a client may read nothing before the
        stream is closed.
    :param blocking: run ``callback`` in a real OS thread of the thread pool.
    :raises ValueError: a bad header name or value (nothing is sent).

    .. versionadded:: 0.1
    """
    headers = check_headers(headers)  # before anything else happens
    prepared = prepare_stream(
        callback,
        retry=retry,
        ping=ping,
        send_timeout=send_timeout,
        blocking=blocking,
    )
    if isinstance(prepared, Response):
        return prepared
    return SSEResponse(prepared, status=status, headers=headers)


def prepare_stream(
    callback: StreamCallback,
    *,
    retry: int | None = None,
    ping: float | None = None,
    send_timeout: float | None = None,
    blocking: bool = False,
) -> SSEBody | Response:
    """The body of a stream for this request, or the refusal to send instead.

    What :func:`stream` and ``gsse.django.stream`` share: the checks at the
    call site, the middleware's admission, the body bound to the request.
    """
    check_callback(callback)
    if retry is not None:
        encode_retry(retry)  # validate now, at the call site
    environ = REQUEST_ENVIRON.get()
    refusal = stream_refusal(environ, blocking)
    if refusal is not None:
        return refusal
    body = SSEBody(
        callback,
        blocking=blocking,
        retry=retry,
        settings=StreamSettings(ping=ping, send_timeout=send_timeout),
    )
    body.environ = environ
    return body


def sse_body_of(result: object) -> SSEBody | None:
    """The :class:`SSEBody` a WSGI app returned, if it returned a stream.

    Either the body itself (werkzeug and Flask responses) or a response
    object that carries one as ``gsse_body`` (``gsse.django``'s response,
    which Django's handler returns as the WSGI iterable).
    """
    if isinstance(result, SSEBody):
        return result
    body = getattr(result, "gsse_body", None)
    return body if isinstance(body, SSEBody) else None
