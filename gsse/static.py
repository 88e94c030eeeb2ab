"""The browser module gsse ships (``gsse/static/gsse.js``) and how it is served.

:class:`gsse.App` serves it at ``/_gsse/gsse.js``; any other framework can
serve the file :func:`static_file` names. Deliberate choices:

- The file is read once and kept in memory: it is small, and an ETag from
  its content is the same on every install of one version.
- The unversioned URL must be revalidated (``no-cache`` plus the ETag, so a
  repeat visit costs a 304); a URL naming the installed version
  (``gsse.<version>.js`` or ``gsse.js?v=<version>``) never changes, so it is
  cached for a year as ``immutable``. A URL naming another version (a page
  cached across an upgrade) gets today's file, revalidated, never an error.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from ._version import __version__

__all__ = ["static_file", "static_response"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The files gsse ships for browsers.
FILES = ("gsse.js",)

#: ``gsse.js`` or ``gsse.<version>.js``.
_NAME = re.compile(r"(?P<stem>gsse)(?:\.(?P<version>[0-9A-Za-z.+-]+))?\.js")

#: A year: what "never changes" means to caches.
IMMUTABLE_AGE = 31536000


def static_file(name: str) -> str:
    """The path of the shipped file ``name``, for any framework's static files.

    :param name: ``"gsse.js"``.
    :raises ValueError: ``name`` is not a file gsse ships.

    .. versionadded:: 0.2
    """
    if name not in FILES:
        raise ValueError(
            f"gsse ships no static file {name!r}; the files are {', '.join(FILES)}"
        )
    return str(STATIC_DIR / name)


@cache
def _content(name: str) -> tuple[bytes, str]:
    body = Path(static_file(name)).read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:20]


def static_response(request: Request, name: str) -> Response | None:
    """The response for ``name`` under the static path, ``None`` if not ours."""
    match = _NAME.fullmatch(name)
    if match is None or request.method not in ("GET", "HEAD"):
        return None
    body, etag = _content(match["stem"] + ".js")
    response = Response(body, mimetype="text/javascript")
    response.set_etag(etag)
    version = match["version"] or request.args.get("v")
    if version == __version__:
        response.cache_control.public = True
        response.cache_control.max_age = IMMUTABLE_AGE
        response.cache_control.immutable = True
    else:
        response.cache_control.no_cache = True
    return response.make_conditional(request)
