"""App: a plain WSGI application with werkzeug routing and gsse handlers.

Handlers take an :class:`~gsse.Event` and either start a stream or return an
ordinary response, with Flask's conventions for return values: ``str`` and
``bytes`` (HTML), ``dict``/``list`` (JSON), a werkzeug ``Response``, or a
tuple ``(body, status)``, ``(body, headers)`` or ``(body, status, headers)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import InternalServerError
from werkzeug.routing import Rule
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from ._version import __version__
from .callbacks import check_plain
from .event import Event
from .host import HOST_KEY
from .host import HostView
from .host import view_of
from .logsafe import escape
from .routing import Routes
from .settings import StreamSettings
from .static import static_file
from .static import static_response
from .stream import REQUEST_ENVIRON
from .stream import SSEBody
from .stream import SSEResponse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

Handler = Callable[[Event], Any]
T_handler = TypeVar("T_handler", bound=Handler)


def make_response(rv: Any, handler_name: str) -> Response:
    """Turn a handler's return value into a response, as Flask does."""
    if isinstance(rv, Response):
        return rv
    status: int | str | None = None
    headers: Any = None
    if isinstance(rv, tuple):
        if len(rv) == 3:
            rv, status, headers = rv
        elif len(rv) == 2:
            rv, second = rv
            if isinstance(second, (int, str)):
                status = second
            else:
                headers = second
        else:
            raise TypeError(
                f"handler {handler_name} returned a tuple of {len(rv)} items; use"
                " (body, status), (body, headers) or (body, status, headers)"
            )
    if isinstance(rv, Response):
        response = rv
    elif isinstance(rv, (str, bytes, bytearray)):
        body = bytes(rv) if isinstance(rv, bytearray) else rv
        response = Response(body, mimetype="text/html")
    elif isinstance(rv, (dict, list)):
        response = Response(json.dumps(rv), mimetype="application/json")
    elif rv is None:
        raise TypeError(
            f"handler {handler_name} returned None without starting a stream;"
            " return a str, bytes, dict, list or Response, or call"
            " event.start_sse() and event.set_stream_callback(callback)"
        )
    else:
        raise TypeError(
            f"handler {handler_name} returned {type(rv).__name__}, which is not a"
            " response; return a str, bytes, dict, list or Response"
        )
    if status is not None:
        response.status = status
    if headers:
        response.headers.update(headers)
    return response


#: Content types of the handler return values answered without a werkzeug
#: Response (the same bytes on the wire; a Response costs half a request).
_PLAIN_TYPES: dict[type, str] = {
    str: "text/html; charset=utf-8",
    bytes: "text/html; charset=utf-8",
    dict: "application/json",
    list: "application/json",
}


def plain_body(rv: Any) -> tuple[bytes, str] | None:
    """``(body, content type)`` of a bare str, bytes, dict or list; else ``None``."""
    content_type = _PLAIN_TYPES.get(type(rv))
    if content_type is None:
        return None
    if type(rv) is str:
        return rv.encode(), content_type
    if type(rv) is bytes:
        return rv, content_type
    return json.dumps(rv).encode(), content_type


class App:
    """A WSGI application whose handlers can stream Server-Sent Events.

    :param ping: default keep-alive interval in seconds for this app's
        streams (``0`` turns it off); the server's ``--ping`` otherwise.
    :param send_timeout: default seconds a client may read nothing before
        its stream is closed.
    :param static_path: where the browser module is served:
        ``<static_path>/gsse.js`` (see :meth:`static_url`); ``None`` serves
        nothing.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``static_path``.
    """

    def __init__(
        self,
        *,
        ping: float | None = None,
        send_timeout: float | None = None,
        static_path: str | None = "/_gsse",
    ) -> None:
        if static_path is not None and (
            not isinstance(static_path, str)
            or not static_path.startswith("/")
            or static_path.endswith("/")
        ):
            raise ValueError(
                f"static_path must start with '/' and not end with one, e.g."
                f" '/_gsse', or be None; got {static_path!r}"
            )
        self.url_map = Routes()
        self.handlers: dict[str, Handler] = {}
        self.settings = StreamSettings(ping=ping, send_timeout=send_timeout)
        self.static_path = static_path

    def static_url(self, name: str = "gsse.js") -> str:
        """The long-cached URL of a shipped file, e.g. ``/_gsse/gsse.js?v=0.2.0``.

        :raises ValueError: ``static_path`` is ``None`` or ``name`` is unknown.
        """
        if self.static_path is None:
            raise ValueError("this App serves no static files (static_path=None)")
        static_file(name)  # a ValueError for names gsse does not ship
        return f"{self.static_path}/{name}?v={__version__}"

    def route(
        self,
        rule: str,
        *,
        methods: Iterable[str] | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> Callable[[T_handler], T_handler]:
        """Register the decorated function as the handler of ``rule``.

        :param rule: a werkzeug rule, e.g. ``"/rooms/<room>/events"``.
        :param methods: allowed methods (default ``GET``, plus ``HEAD``).
        :param endpoint: the endpoint name (default: the function's name).
        """

        def register(handler: T_handler) -> T_handler:
            check_plain(
                handler, "the handler", "it would return a coroutine, not a response"
            )
            name = endpoint or handler.__name__
            existing = self.handlers.get(name)
            if existing is not None and existing is not handler:
                raise ValueError(
                    f"endpoint {name!r} is already used by {existing.__qualname__};"
                    " pass endpoint= to tell them apart"
                )
            allowed = list(methods) if methods is not None else ["GET"]
            self.url_map.add(Rule(rule, endpoint=name, methods=allowed, **options))
            self.handlers[name] = handler
            return handler

        return register

    def dispatch(self, request: Request) -> Response:
        """Find and run the handler for ``request``; always return a response."""
        result = self._dispatch(request.environ, request)
        if isinstance(result, Response):
            return result
        if isinstance(result, SSEBody):
            return SSEResponse(result, headers=Headers(result.head))
        body, content_type = result
        return Response(body, content_type=content_type)

    def _dispatch(
        self, environ: WSGIEnvironment, request: Request | None = None
    ) -> Response | SSEBody | tuple[bytes, str]:
        static_path = self.static_path
        if static_path is not None and static_path in environ.get("PATH_INFO", ""):
            request = request or Request(environ)
            prefix = f"{static_path}/"
            if request.path.startswith(prefix):
                served = static_response(request, request.path[len(prefix) :])
                if served is not None:
                    return served
        try:
            name, path_params = self.url_map.lookup(environ)
            handler = self.handlers[name]
            event = Event(request or environ, path_params)
            rv = handler(event)
            if event.started:
                return event.stream_body()
            return plain_body(rv) or make_response(rv, handler.__qualname__)
        except HTTPException as exc:
            return exc.get_response(environ)
        except Exception:
            request = request or Request(environ)
            logger.exception(
                "handler for %s %s failed", request.method, escape(request.path, 200)
            )
            return InternalServerError().get_response(environ)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        view = view_of(environ) or HostView(None, StreamSettings())
        environ[HOST_KEY] = view.through(self.settings)
        if REQUEST_ENVIRON.get() is environ:  # under SSEMiddleware: set already
            result = self._dispatch(environ)
        else:
            # What handlers call (gsse.stream, runs.start, runs.stream) finds
            # the request's host here, as under the middleware.
            token = REQUEST_ENVIRON.set(environ)
            try:
                result = self._dispatch(environ)
            finally:
                REQUEST_ENVIRON.reset(token)
        if isinstance(result, Response):
            return result(environ, start_response)
        if isinstance(result, SSEBody):
            assert result.head is not None
            start_response("200 OK", result.head)
            return () if environ.get("REQUEST_METHOD") == "HEAD" else result
        body, content_type = result
        start_response(
            "200 OK",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
