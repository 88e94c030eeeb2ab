"""Server-Sent Events from Django views: ``return gsse.django.stream(callback)``.

A view returns :func:`stream` (a callback) or :func:`subscribe` (channels of
a :class:`gsse.Broker`), and ``wsgi.py`` wraps Django's handler once::

    application = gsse.SSEMiddleware(get_wsgi_application())

The response is a :class:`~django.http.StreamingHttpResponse`, so Django's
middleware (sessions, auth, CSRF, ``after``-style headers) treats it as any
other streaming response. Its body is a gsse stream: under ``gsse run`` the
server finds it on the response (``gsse_body``) and streams straight to the
socket; under ``gunicorn -k gevent`` the host iterates the response as usual.

Two Django specifics are handled here:

- ``Content-Encoding`` is set (empty), so ``GZipMiddleware`` and proxies
  leave the stream alone: gzip would hold events back in its window.
- The callback runs in a greenlet (or pool thread) of its own, where Django
  opens database connections of its own; they are closed when the callback
  returns or raises, whatever ``CONN_MAX_AGE`` says (nothing would reuse
  them: Django's connections belong to one greenlet or thread).

This is the only module of gsse that imports Django.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from django.db import connections
from django.http import HttpResponse
from django.http import StreamingHttpResponse
from werkzeug.wrappers import Response

from .event import SupportsFollow
from .event import SupportsSubscribe
from .event import subscribe_options
from .headers import SSE_HEADERS
from .headers import check_headers
from .hosts import host_can_stream
from .stream import REQUEST_ENVIRON
from .stream import SSEBody
from .stream import StreamCallback
from .stream import check_callback
from .stream import header_text
from .stream import prepare_stream
from .writer import SSEWriter

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["SSEStreamingHttpResponse", "follow", "stream", "subscribe"]

logger = logging.getLogger(__name__)

HOW_TO_RUN = (
    "run the project with `gsse run project.wsgi:application` or"
    " `gunicorn -k gevent project.wsgi:application`"
    " (with application = gsse.SSEMiddleware(get_wsgi_application()))"
)


def close_db_connections() -> None:
    """Close this greenlet's (or thread's) Django database connections."""
    try:
        connections.close_all()
    except Exception:
        logger.exception("closing a stream callback's database connections failed")


def closing_db(callback: StreamCallback) -> StreamCallback:
    """``callback`` that closes its database connections when it ends."""

    @functools.wraps(callback)
    def run(writer: SSEWriter) -> Any:
        try:
            return callback(writer)
        finally:
            close_db_connections()

    return run


def _body_of(body: SSEBody) -> Iterator[bytes]:
    # A generator, so that iter() on it (Django calls it at once) starts
    # nothing: the stream starts when the host reads its first chunk, and
    # never when the gsse server streams the body itself.
    yield from body


class SSEStreamingHttpResponse(StreamingHttpResponse):  # type: ignore[misc]
    """A Django streaming response whose body is a gsse stream.

    ``gsse_body`` is the :class:`~gsse.stream.SSEBody` while the response
    still streams it (``None`` once a middleware replaced the content).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        body: SSEBody,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._gsse_body = body
        self._gsse_content = _body_of(body)
        super().__init__(self._gsse_content, status=status)
        for name, value in SSE_HEADERS:
            self[name] = value
        # Any Content-Encoding keeps GZipMiddleware (and most proxies) off:
        # gzip holds small writes back, so events would arrive in bursts.
        self["Content-Encoding"] = ""
        for name, value in (headers or {}).items():
            self[name] = value
        self._resource_closers.append(body.close)

    @property
    def gsse_body(self) -> SSEBody | None:
        """The stream to serve, unless a middleware replaced the content."""
        if getattr(self, "_iterator", None) is self._gsse_content:
            return self._gsse_body
        return None


def _head_response(status: int, headers: Mapping[str, str] | None) -> HttpResponse:
    response = HttpResponse(status=status)
    for name, value in SSE_HEADERS:
        response[name] = value
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _django_response(refusal: Any) -> HttpResponse:
    """A werkzeug refusal (``503``, ``429``, ...) as a Django response."""
    response = HttpResponse(
        refusal.get_data(),
        status=refusal.status_code,
        content_type=refusal.content_type,
    )
    for name in ("Retry-After",):
        if name in refusal.headers:
            response[name] = refusal.headers[name]
    # gsse logged it (INFO for a limit): keep Django from logging a 503 as
    # an ERROR of the server.
    response._has_been_logged = True
    return response


def _unsupported_host(environ: WSGIEnvironment | None) -> HttpResponse:
    environ = environ or {}
    software = environ.get("SERVER_SOFTWARE") or "this server"
    where = environ.get("PATH_INFO") or "this view"
    message = (
        f"gsse cannot stream {where} under {software}: a stream needs a gevent"
        " server, and Django's runserver (or any thread-per-request server)"
        f" cannot carry one; {HOW_TO_RUN}. runserver serves every other view."
    )
    logger.error("%s", message)
    response = HttpResponse(message + "\n", status=500, content_type="text/plain")
    response._has_been_logged = True  # once is enough
    return response


def stream(
    callback: StreamCallback,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    retry: int | None = None,
    ping: float | None = None,
    send_timeout: float | None = None,
    blocking: bool = False,
) -> HttpResponse:
    """A Django response that streams ``callback(writer)``; return it from a view.

    The arguments are those of :func:`gsse.stream`. Read what the callback
    needs from ``request`` (``request.user``, the session, the query) in the
    view, before returning. Under a host that cannot stream (runserver) the
    answer is a ``500`` saying what to run; over a limit of
    :class:`~gsse.SSEMiddleware`, a ``503`` or ``429``. A ``HEAD`` request
    gets the headers and no stream.

    :raises TypeError: ``callback`` is not callable, or is async.

    .. versionadded:: 0.2
    """
    check_callback(callback)
    check_headers(headers)  # refuse control characters before anything is sent
    environ = REQUEST_ENVIRON.get()
    if not host_can_stream(environ):
        return _unsupported_host(environ)
    if environ is not None and environ.get("REQUEST_METHOD") == "HEAD":
        return _head_response(status, headers)
    prepared = prepare_stream(
        closing_db(callback),
        retry=retry,
        ping=ping,
        send_timeout=send_timeout,
        blocking=blocking,
    )
    if not isinstance(prepared, SSEBody):
        return _django_response(prepared)
    return SSEStreamingHttpResponse(prepared, status=status, headers=headers)


def subscribe(
    broker: SupportsSubscribe,
    *channels: str,
    headers: Mapping[str, str] | None = None,
    retry: int | None = None,
    ping: float | None = None,
    send_timeout: float | None = None,
    presence: dict[str, Any] | None = None,
    presence_events: bool = False,
    snapshot: bool = False,
) -> HttpResponse:
    """A Django response that streams the events published to ``channels``.

    A client that reconnects with ``Last-Event-ID`` first gets what it
    missed (see :class:`gsse.Broker`); ``presence`` and ``presence_events``
    are :meth:`gsse.Broker.subscriber`'s.

    :param snapshot: first send the newest event of every key (compacted
        channels); see :meth:`gsse.Broker.subscriber`.

    .. versionadded:: 0.2
    """
    return stream(
        broker.subscriber(
            *channels, **subscribe_options(presence, presence_events, snapshot)
        ),
        headers=headers,
        retry=retry,
        ping=ping,
        send_timeout=send_timeout,
    )


def follow(
    runs: SupportsFollow,
    run_id: str,
    *,
    headers: Mapping[str, str] | None = None,
    retry: int | None = None,
    ping: float | None = None,
    send_timeout: float | None = None,
) -> HttpResponse:
    """A Django response that follows a run of :class:`gsse.Runs`.

    Everything the run sent (or what follows ``Last-Event-ID``), its live
    events, then ``event: end``; ``404`` for an unknown or expired run,
    ``204`` for a client that already got the ``end``.

    .. versionadded:: 0.3
    """
    environ = REQUEST_ENVIRON.get() or {}
    last_event_id = header_text(environ.get("HTTP_LAST_EVENT_ID"))
    answer = runs.answer(run_id, last_event_id)
    if isinstance(answer, Response):
        return _django_response(answer)
    return stream(
        answer,
        headers=headers,
        retry=retry,
        ping=ping,
        send_timeout=send_timeout,
    )
