"""Event: what a gsse handler receives, and how it turns into a stream.

A handler calls :meth:`Event.start_sse` and then
:meth:`Event.set_stream_callback` (or :meth:`Event.subscribe`) and returns;
the :class:`~gsse.App` then answers with the stream. The order is enforced
so that a mistake shows up at once, with a message saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from .headers import check_headers
from .headers import stream_head
from .settings import UNSET
from .settings import StreamSettings
from .stream import SSEBody
from .stream import SSEResponse
from .stream import StreamCallback
from .stream import header_text
from .stream import ping_header
from .stream import stream_refusal
from .wire import encode_retry

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


class SupportsSubscribe(Protocol):
    """Anything that streams channels to a writer, such as :class:`gsse.Broker`."""

    def subscriber(
        self,
        *channels: str,
        presence: dict[str, Any] | None = ...,
        presence_events: bool = ...,
        snapshot: bool = ...,
    ) -> StreamCallback: ...


def subscribe_options(
    presence: dict[str, Any] | None, presence_events: bool, snapshot: bool
) -> dict[str, Any]:
    """The ``subscriber()`` keywords that differ from their defaults.

    Only those are passed, so a broker-like object that knows none of them
    still works for a plain subscription.
    """
    options: dict[str, Any] = {}
    if presence is not None or presence_events:
        options.update(presence=presence, presence_events=presence_events)
    if snapshot:
        options["snapshot"] = True
    return options


class SupportsFollow(Protocol):
    """Anything that streams a run to a writer, such as :class:`gsse.Runs`."""

    def answer(
        self, run_id: str, last_event_id: str | None
    ) -> Response | StreamCallback: ...


class Event:
    """One request to a gsse handler.

    :param request: the request, a :class:`werkzeug.wrappers.Request`, or
        its WSGI environ (the ``Request`` is then made when first asked for:
        a handler that never looks at it does not pay for it).
    :param path_params: the route's variables, e.g. ``{"room": "lobby"}``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``request`` may be a WSGI environ.
    """

    __slots__ = (
        "_request",
        "environ",
        "path_params",
        "_headers",
        "_retry",
        "_settings",
        "_body",
        "_answer",
    )

    def __init__(
        self, request: Request | WSGIEnvironment, path_params: Mapping[str, Any]
    ) -> None:
        if isinstance(request, Request):
            self._request: Request | None = request
            #: The request's WSGI environ.
            self.environ: WSGIEnvironment = request.environ
        else:
            self._request = None
            self.environ = request
        self.path_params = dict(path_params)
        self._headers: Headers | None = None
        self._retry: int | None = None
        self._settings: StreamSettings | None = None
        self._body: SSEBody | None = None
        #: An answer instead of the stream (a run's 404 or 204).
        self._answer: Response | None = None

    @property
    def request(self) -> Request:
        """The request, a :class:`werkzeug.wrappers.Request`."""
        request = self._request
        if request is None:
            request = self._request = Request(self.environ)
        return request

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` request header (decoded as UTF-8), or ``None``."""
        return header_text(self.environ.get("HTTP_LAST_EVENT_ID"))

    @property
    def started(self) -> bool:
        """Whether :meth:`start_sse` was called."""
        return self._settings is not None

    def start_sse(
        self,
        headers: Mapping[str, str] | Headers | None = None,
        retry: int | None = None,
        ping: float | None = None,
        send_timeout: float | None = None,
    ) -> None:
        """Answer with status 200 and ``text/event-stream`` headers.

        :param headers: extra response headers; names must be HTTP tokens and
            values free of control characters but tab.
        :param retry: the client's reconnection time in ms, sent first.
        :param ping: seconds of idleness before a keep-alive comment for this
            stream (``0`` turns it off); defaults to the app's or server's.
        :param send_timeout: seconds a client may read nothing before this
            stream is closed.
        :raises RuntimeError: called twice.
        :raises ValueError: a bad header name or value (nothing is sent).
        """
        if self.started:
            raise RuntimeError(
                "start_sse() was already called for this request; call it once,"
                " then set_stream_callback()"
            )
        if retry is not None:
            encode_retry(retry)
        self._headers = check_headers(headers)
        self._retry = retry
        self._settings = (
            StreamSettings(ping=ping, send_timeout=send_timeout)
            if ping is not None or send_timeout is not None
            else UNSET
        )

    def set_stream_callback(
        self, callback: StreamCallback, blocking: bool = False
    ) -> None:
        """Stream ``callback(writer)`` once the headers are on the wire.

        :param callback: called with a ready :class:`~gsse.SSEWriter`, in a
            greenlet of its own once this handler has returned.
        :param blocking: run it in a real OS thread of the thread pool instead,
            for code that blocks without yielding to gevent.
        :raises RuntimeError: :meth:`start_sse` was not called first, or a
            callback (or subscription) was already set.
        """
        if self._settings is None:
            raise RuntimeError(
                "set_stream_callback() needs an SSE response: call"
                " event.start_sse() first, then event.set_stream_callback(callback)"
            )
        if self._body is not None:
            raise RuntimeError(
                "set_stream_callback() was already called for this request; a"
                " stream has one callback (send every event from it, or hand its"
                " writer to other code)"
            )
        # SSEBody checks the callback (one place for every way to stream).
        self._body = SSEBody(
            callback, blocking=blocking, retry=self._retry, settings=self._settings
        )

    def subscribe(
        self,
        broker: SupportsSubscribe,
        *channels: str,
        presence: dict[str, Any] | None = None,
        presence_events: bool = False,
        snapshot: bool = False,
    ) -> None:
        """Stream the events published to ``channels`` (instead of a callback).

        A client that reconnects with ``Last-Event-ID`` first gets what it
        missed. See :class:`gsse.Broker`.

        :param presence: this stream's entry in ``broker.presence(channel)``
            (a JSON-serialisable dict), or ``None``: anonymous, only counted
            by ``broker.subscribers(channel)``.
        :param presence_events: send this stream ``event: join`` and
            ``event: leave`` (data: a member's dict as JSON), first a ``join``
            for every member already there; one channel only.
        :param snapshot: first send the newest event of every key of the
            channels (compacted channels, ``publish(..., key=...)``), then
            live events; see :meth:`gsse.Broker.subscriber`.

        :raises gsse.brokers.frames.ChannelRefused: a bad or missing channel
            name, or too many channels: a ``ValueError`` or ``TypeError``
            that is also a werkzeug ``BadRequest``, so the client gets ``400``.
        """
        self.set_stream_callback(
            broker.subscriber(
                *channels, **subscribe_options(presence, presence_events, snapshot)
            )
        )

    def follow(self, runs: SupportsFollow, run_id: str) -> None:
        """Stream the run ``run_id`` of ``runs`` (a :class:`gsse.Runs`).

        Everything the run sent (or what follows ``Last-Event-ID``), then
        its live events, then ``event: end``. An unknown or expired run is
        answered ``404``; a client that already got the ``end`` (its
        ``Last-Event-ID`` is the end's id), ``204``, which stops
        ``EventSource``; ``503`` while the broker's Redis does not answer.
        Calls :meth:`start_sse` first if the handler did not.
        """
        if not self.started:
            self.start_sse()
        if self._body is not None or self._answer is not None:
            raise RuntimeError(
                "follow() after a callback or follow() was already set for"
                " this request; a stream has one source"
            )
        answer = runs.answer(run_id, self.last_event_id)
        if isinstance(answer, Response):
            self._answer = answer
        else:
            self.set_stream_callback(answer)

    def response(self) -> Response:
        """The SSE response this event describes (used by :meth:`gsse.App.dispatch`).

        Under a host that cannot stream, or over a middleware's limit, it is
        the refusal instead (see :func:`gsse.stream`).

        :raises RuntimeError: :meth:`start_sse` was called but no callback set.
        """
        answer = self.stream_body()
        if isinstance(answer, Response):
            return answer
        return SSEResponse(answer, headers=self._headers)

    def stream_body(self) -> SSEBody | Response:
        """The body to stream, its headers in :attr:`SSEBody.head`; or the
        response to send instead (a refusal, a run's 404 or 204).

        What :class:`~gsse.App` answers with: the head goes straight to
        ``start_response``, without a werkzeug ``Response`` in between.

        :raises RuntimeError: :meth:`start_sse` was called but no callback set.
        """
        if self._answer is not None:
            return self._answer
        body = self._body
        if body is None:
            raise RuntimeError(
                "the handler called event.start_sse() but returned without"
                " event.set_stream_callback(callback) or event.subscribe(...);"
                " set one before returning"
            )
        environ = self.environ
        refusal = stream_refusal(environ, body.blocking)
        if refusal is not None:
            return refusal
        body.environ = environ
        head = stream_head(self._headers)
        head.append(ping_header(body, environ))
        body.head = head
        return body
