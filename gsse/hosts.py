"""Which WSGI hosts can carry a stream, and a clear answer from the others.

A stream is a long response whose callback runs as a greenlet, so it needs a
gevent host: the gsse server, gunicorn's gevent worker, gevent's ``pywsgi``,
or any server once the standard library is monkey-patched (its threads are
then greenlets). A thread-per-request server left unpatched (``wsgiref``,
werkzeug's dev server, gunicorn's sync worker) would hold a real thread per
stream and could block forever on a client that left; rather than hang
there, a stream is answered ``500`` with a message saying what to run
instead, and the error is logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent
from gevent import monkey
from werkzeug.wrappers import Response

from .host import view_of

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

HOW_TO_HOST = (
    "run the app with `gsse run module:app`, `gunicorn -k gevent module:app`"
    " or gevent.pywsgi.WSGIServer (after gevent.monkey.patch_all())"
)

_warned_unpatched = False


def host_can_stream(environ: WSGIEnvironment | None) -> bool:
    """``True`` when the request is served on gevent (asked from the app)."""
    view = view_of(environ)
    if view is not None and view.host is not None and view.host.native:
        return True  # the gsse server
    if monkey.is_module_patched("socket"):
        return True
    if isinstance(gevent.getcurrent(), gevent.Greenlet):
        _warn_unpatched()  # gevent's pywsgi, say, in an unpatched program
        return True
    return False


def _warn_unpatched() -> None:
    global _warned_unpatched
    if not _warned_unpatched:
        _warned_unpatched = True
        logger.warning(
            "streaming under gevent.pywsgi without gevent.monkey.patch_all():"
            " time.sleep(), sockets and requests in a stream callback will"
            " stall every other stream; patch first thing in your script"
        )


def unsupported_host_response(environ: WSGIEnvironment | None) -> Response:
    """The ``500`` a stream gets from a host that cannot carry it."""
    environ = environ or {}
    software = environ.get("SERVER_SOFTWARE") or "this WSGI server"
    where = environ.get("PATH_INFO") or "this response"
    message = (
        f"gsse cannot stream {where} under {software}:"
        f" streams need a gevent server; {HOW_TO_HOST}"
    )
    logger.error("%s", message)
    return Response(message + "\n", status=500, mimetype="text/plain")


_warned_no_middleware = False


def warn_no_middleware(environ: WSGIEnvironment | None) -> None:
    """Say once that a host without SSEMiddleware streams without its care.

    The stream works (a host of its own pings it), but nothing ends it
    gracefully on SIGTERM and no stream limit applies: easy to miss until a
    deploy cuts every stream.
    """
    global _warned_no_middleware
    if _warned_no_middleware:
        return
    _warned_no_middleware = True
    software = (environ or {}).get("SERVER_SOFTWARE")
    # Under the stream's logger, where operators look for stream warnings.
    logging.getLogger("gsse.stream").warning(
        "streaming%s without gsse.SSEMiddleware: streams are not ended"
        " gracefully on SIGTERM (a restart cuts them) and max_streams limits"
        " do not apply; wrap the WSGI app once: app = gsse.SSEMiddleware(app)",
        f" under {software}" if software else "",
    )
