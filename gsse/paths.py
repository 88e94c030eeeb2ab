"""Which request paths a protected prefix covers, whatever the spelling.

:class:`~gsse.auth.AuthMiddleware` sits in front of a router it cannot see
(gsse's werkzeug ``Map``, Flask's, Django's...), so it must never read a
path differently from the router in the direction that lets a request
through. One path can be spelled many ways: werkzeug strips leading slashes
(``//events`` routes to ``/events``), the server has already percent-decoded
``PATH_INFO`` (``/%2Fevents`` arrives as ``//events``), and other routers
resolve dot segments, drop ``;params``, fold case or decode twice.

Deliberate choices (sans-IO, no werkzeug):

- A path is matched as a list of *segments*, so ``/events`` covers
  ``/events`` and ``/events/...`` but not ``/eventsfoo``.
- Matching is a superset of what routers do: empty segments (repeated,
  leading and trailing slashes) are dropped, ``\\`` separates segments too,
  each segment is cut at ``;``, the path at ``?`` and ``#``, segments compare
  case-insensitively and without trailing dots or spaces, and a path still
  percent-encoded after the server's decoding is also matched decoded again.
  Protecting a spelling the router would answer with 404 costs nothing;
  missing one leaks the view.
- What cannot be read one way only is refused (:class:`AmbiguousPath`, a
  ``400``): control characters, and dot segments (``.``, ``..``, ``%2e``
  once decoded, ``.;x``, ``...``), which clients resolve before sending and
  routers treat differently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["AmbiguousPath", "PathPrefixes", "merge_slashes", "segments"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SEPARATOR = re.compile(r"[/\\]")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
#: ``scheme://authority``: an absolute-form request-target (RFC 9112 3.2.2)
#: left whole in ``PATH_INFO`` by the server; some apps route on its path.
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\\]*")
_REPEATED_SLASHES = re.compile(r"/{2,}")
#: Characters a configured prefix may not hold: they would never match.
_NOT_IN_PREFIX = re.compile(r"[;?#%\\]")
#: Percent-decodings tried before a path counts as ambiguous.
_MAX_DECODINGS = 4

Key = tuple[str, ...]


class AmbiguousPath(ValueError):
    """A request path routers may read in more than one way (answer ``400``)."""


def segments(path: str) -> Key:
    """The segments a decoded path is matched on: ``"//A/b;x/"`` -> ``("a", "b")``.

    :raises AmbiguousPath: a control character or a dot segment.
    """
    if _CONTROL.search(path):
        raise AmbiguousPath(f"control character in the path {path!r}")
    path = _QUERY_OR_FRAGMENT.split(path, maxsplit=1)[0]
    key = []
    for raw in _SEPARATOR.split(path):
        # Some hosts drop trailing dots and spaces ("events." is "events").
        segment = raw.split(";", 1)[0].strip(" ")
        stripped = segment.rstrip(". ")
        if segment and not stripped:
            raise AmbiguousPath(
                f"dot segment {raw!r} in the path {path!r}; send the path with"
                " dot segments resolved"
            )
        if stripped:
            key.append(stripped.casefold())
    return tuple(key)


def _spellings(path_info: str) -> list[str]:
    """``PATH_INFO`` as text, plus the other paths a router might take from it."""
    try:
        # WSGI (PEP 3333) carries the path's bytes as latin-1; routers decode
        # them as UTF-8, as werkzeug does.
        text = path_info.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        text = path_info
    texts = [text]
    decoded = text
    for _ in range(_MAX_DECODINGS):
        if not _ENCODED.search(decoded):
            break
        decoded = unquote(decoded, errors="replace")
        texts.append(decoded)
    else:
        if _ENCODED.search(decoded):
            raise AmbiguousPath(f"the path {path_info!r} is percent-encoded too often")
    for spelling in list(texts):
        absolute = _ABSOLUTE.match(spelling)
        if absolute:
            texts.append(spelling[absolute.end() :])
    return texts


def merge_slashes(path_info: str) -> str:
    """``PATH_INFO`` with each run of slashes made one, as routers read it."""
    return _REPEATED_SLASHES.sub("/", path_info)


class PathPrefixes:
    """Path prefixes, matched on whole segments against every spelling.

    :param paths: prefixes such as ``"/events"`` or ``"/api/private"``;
        ``"/"`` covers every path.
    :raises ValueError: a prefix that is not a plain absolute path.
    :raises TypeError: a single string instead of a list of them.
    """

    def __init__(self, paths: Iterable[str]) -> None:
        if isinstance(paths, (str, bytes)):
            raise TypeError(
                f"paths must be a list of path prefixes, got the string {paths!r};"
                f" write paths=[{paths!r}]"
            )
        keys = []
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(
                    f"each protected path must be a str starting with '/', got {path!r}"
                )
            if _NOT_IN_PREFIX.search(path):
                raise ValueError(
                    f"the protected path {path!r} holds one of ; ? # % \\; give the"
                    " decoded path as routes spell it, e.g. '/api/private'"
                )
            try:
                keys.append(segments(path))
            except AmbiguousPath as exc:
                raise ValueError(
                    f"the protected path {path!r} is not a plain path ({exc});"
                    " remove dot segments and control characters"
                ) from None
        if not keys:
            raise ValueError(
                "paths=[] protects nothing; list path prefixes, or pass paths=None"
                " to protect every path"
            )
        self.keys = tuple(keys)

    def covers(self, path_info: str) -> bool:
        """Whether any spelling of ``path_info`` lies under a prefix.

        :raises AmbiguousPath: the path cannot be read one way only.
        """
        for spelling in _spellings(path_info):
            key = segments(spelling)
            for prefix in self.keys:
                if key[: len(prefix)] == prefix:
                    return True
        return False
