"""Who may open a stream, and from which web origins: auth hooks and CORS.

A stream must be refused *before* its headers are sent: once ``200`` and
``text/event-stream`` are on the wire, the browser's ``EventSource`` has
opened and only a close (which it answers by reconnecting) is left. So every
hook here runs before the handler, or before ``start_sse()``:

- :func:`authorize` decorates a gsse handler with a check of the request
  (a token, a session cookie, ...); a refused request gets ``401`` (or the
  ``HTTPException`` the check raises), which an ``EventSource`` does not
  retry.
- :func:`require_channels` checks each channel a request asks for, before
  ``event.subscribe(broker, ...)``, and answers ``403`` naming the first
  channel refused.
- :class:`AuthMiddleware` runs a check for any WSGI app (Flask, Django...)
  on path prefixes matched as routers read paths (:mod:`gsse.paths`).
- :class:`CORSMiddleware` answers cross-origin ``EventSource`` requests,
  ``withCredentials`` included (then the origin is echoed, never ``*``, as
  the Fetch standard requires), and preflights.

Every refusal is counted in ``gsse_auth_denied_total``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import Forbidden
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import InternalServerError
from werkzeug.exceptions import Unauthorized
from werkzeug.wrappers import Request

from .callbacks import check_plain
from .callbacks import describe
from .callbacks import returned_lazy
from .event import Event
from .metrics import STATS
from .paths import AmbiguousPath
from .paths import PathPrefixes
from .paths import merge_slashes

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

__all__ = ["AuthMiddleware", "CORSMiddleware", "authorize", "require_channels"]

#: A check of a request: truthy allows it; falsy refuses it with ``401``;
#: raising a werkzeug ``HTTPException`` refuses it with that response.
RequestCheck = Callable[[Request], Any]
#: A check of one channel a request subscribes to.
ChannelCheck = Callable[[Request, str], Any]

#: Why an async check is refused: a coroutine is truthy.
ALWAYS_TRUE = "its coroutine would count as true and let every request in"

T_handler = TypeVar("T_handler", bound=Callable[[Event], Any])


def _refuse(request: Request, exc: HTTPException) -> HTTPException:
    STATS.auth_denied += 1
    # %r: a refused path may hold CR, LF or ESC, which must not forge log lines.
    logger.info(
        "refused %s %r from %s with %s",
        request.method,
        request.path,
        request.remote_addr,
        exc.code,
        extra={"path": request.path},
    )
    return exc


def _lazy(check: Callable[..., Any], request: Request, result: Any) -> HTTPException:
    """Refuse (``500``) a check that returned a coroutine or a generator.

    It hid an async function behind a lambda or a decorator from the checks
    made when it was given; its result is truthy whatever it would decide,
    so it must fail closed, not let the request in.
    """
    logger.error(
        "the check %s returned %s, which nothing awaits, for %s %r; refused"
        " with 500. An auth check is a plain def returning true or false",
        describe(check),
        type(result).__name__,
        request.method,
        request.path,
    )
    return _refuse(request, InternalServerError())


def _check(check: RequestCheck, request: Request) -> None:
    try:
        allowed = check(request)
    except HTTPException as exc:
        raise _refuse(request, exc) from None
    if returned_lazy(allowed):
        raise _lazy(check, request, allowed)
    if not allowed:
        raise _refuse(request, Unauthorized())


def authorize(check: RequestCheck) -> Callable[[T_handler], T_handler]:
    """Run ``check(request)`` before the decorated gsse handler.

    ::

        @app.route("/events")
        @authorize(lambda request: request.cookies.get("session") in sessions)
        def events(event): ...

    :param check: truthy to allow; falsy answers ``401``; raising a werkzeug
        ``HTTPException`` (e.g. ``Forbidden()``) answers with it.

    .. versionadded:: 0.1
    """
    if not callable(check):
        raise TypeError(f"authorize() needs a callable check, got {check!r}")
    check_plain(check, "the check", ALWAYS_TRUE)

    def decorate(handler: T_handler) -> T_handler:
        @functools.wraps(handler)
        def guarded(event: Event) -> Any:
            _check(check, event.request)
            return handler(event)

        return guarded  # type: ignore[return-value]

    return decorate


def require_channels(
    request: Request | Event, channels: Iterable[str], check: ChannelCheck
) -> None:
    """Raise ``403`` unless ``check(request, channel)`` allows every channel.

    Call it before ``event.subscribe(broker, *channels)``.

    .. versionadded:: 0.1
    """
    check_plain(check, "the channel check", ALWAYS_TRUE)
    if isinstance(request, Event):
        request = request.request
    for channel in channels:
        try:
            allowed = check(request, channel)
        except HTTPException as exc:
            raise _refuse(request, exc) from None
        if returned_lazy(allowed):
            raise _lazy(check, request, allowed)
        if not allowed:
            raise _refuse(
                request, Forbidden(f"not allowed to subscribe to {channel!r}")
            )


class AuthMiddleware:
    """Runs ``check(request)`` before any WSGI app, for the paths given.

    Paths are matched the way routers read them, never more narrowly (see
    :mod:`gsse.paths`): on whole segments (``/events`` covers
    ``/events/...``, not ``/eventsfoo``), ignoring repeated slashes, case,
    ``;params`` and extra percent-encoding. A path that routers may read in
    more than one way (dot segments, control characters) is answered
    ``400``. With ``paths`` given, repeated slashes are merged in
    ``PATH_INFO`` before the app sees it, so the app routes exactly the path
    that was checked.

    :param app: the WSGI app to protect.
    :param check: as for :func:`authorize`.
    :param paths: path prefixes to protect, as the app's routes spell them
        (relative to ``SCRIPT_NAME``); default: every path.
    :raises ValueError: a prefix that is not a plain path, or ``paths=[]``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: WSGIApplication,
        check: RequestCheck,
        paths: Iterable[str] | None = None,
    ) -> None:
        if not callable(check):
            raise TypeError(f"AuthMiddleware needs a callable check, got {check!r}")
        check_plain(check, "the check", ALWAYS_TRUE)
        self.app = app
        self.check = check
        self.paths = PathPrefixes(paths) if paths is not None else None

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if self.paths is not None:
            path = environ.get("PATH_INFO", "")
            try:
                protected = self.paths.covers(path)
            except AmbiguousPath as exc:
                response = _refuse(Request(environ), BadRequest(str(exc))).get_response(
                    environ
                )
                return response(environ, start_response)
            # One reading for the check and the router: werkzeug strips
            # leading slashes and other routers merge them anywhere.
            environ["PATH_INFO"] = merge_slashes(path)
            if not protected:
                return self.app(environ, start_response)
        try:
            _check(self.check, Request(environ))
        except HTTPException as exc:
            return exc.get_response(environ)(environ, start_response)
        return self.app(environ, start_response)


_ORIGIN = re.compile(r"^https?://[^/\s]+$")


class CORSMiddleware:
    """Lets pages from other origins open ``EventSource`` streams (CORS).

    ::

        app = CORSMiddleware(app, origins=["https://app.example"],
                             allow_credentials=True)

    :param app: the WSGI app.
    :param origins: allowed origins (``"https://host[:port]"``), or ``"*"``
        for any origin (not with credentials).
    :param allow_credentials: allow ``new EventSource(url,
        {withCredentials: true})``: cookies and HTTP auth go along, and the
        response names the origin (never ``*``) with
        ``Access-Control-Allow-Credentials: true``.
    :param allow_headers: request headers a preflight may ask for.
    :param max_age: seconds a browser may cache a preflight answer.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: WSGIApplication,
        origins: Iterable[str] | str,
        *,
        allow_credentials: bool = False,
        allow_headers: Iterable[str] = ("Last-Event-ID", "Cache-Control"),
        max_age: int = 600,
    ) -> None:
        if isinstance(origins, str):
            if origins != "*":
                raise ValueError(
                    f"origins must be '*' or a list of origins, got {origins!r}"
                )
            if allow_credentials:
                raise ValueError(
                    "origins='*' cannot be used with allow_credentials=True (browsers"
                    " refuse it); list the allowed origins instead"
                )
            self.origins: frozenset[str] | None = None
        else:
            listed = list(origins)
            for origin in listed:
                if not isinstance(origin, str) or not _ORIGIN.match(origin):
                    raise ValueError(
                        f"{origin!r} is not an origin; write it as scheme://host[:port]"
                        " with no path or trailing slash, e.g. 'https://app.example'"
                    )
            self.origins = frozenset(listed)
        self.app = app
        self.allow_credentials = allow_credentials
        self.allow_headers = ", ".join(allow_headers)
        self.max_age = max_age

    def allowed(self, origin: str) -> bool:
        return self.origins is None or origin in self.origins

    def _cors_headers(self, origin: str) -> list[tuple[str, str]]:
        if self.origins is None:
            return [("Access-Control-Allow-Origin", "*")]
        headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if self.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if not origin or not self.allowed(origin):
            return self.app(environ, start_response)
        extra = self._cors_headers(origin)
        if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get(
            "HTTP_ACCESS_CONTROL_REQUEST_METHOD"
        ):
            # A preflight: answer it here; the app never sees it.
            start_response(
                "204 No Content",
                [
                    *extra,
                    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
                    ("Access-Control-Allow-Headers", self.allow_headers),
                    ("Access-Control-Max-Age", str(self.max_age)),
                ],
            )
            return []

        def cors_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            names = {name.lower() for name, _ in extra}
            kept = [(k, v) for k, v in headers if k.lower() not in names]
            # Keep what the app varies on, plus Origin.
            vary = [v for k, v in headers if k.lower() == "vary" and v != "Origin"]
            if vary and "vary" in names:
                kept.append(("Vary", ", ".join([*vary, "Origin"])))
                added = [(k, v) for k, v in extra if k.lower() != "vary"]
            else:
                added = extra
            return start_response(status, kept + added, exc_info)

        return self.app(environ, cors_start_response)
