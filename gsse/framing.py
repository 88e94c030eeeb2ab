"""Strict HTTP/1.1 request framing (RFC 9112), with no I/O of its own.

A request is refused when two parties could read its framing differently:
a front proxy that sees one request and a server that sees two is how
request smuggling works. So the request line must be exactly ``METHOD SP
target SP HTTP/1.x CRLF``, header lines exactly ``name: value CRLF``, and
the body's length must follow from exactly one ``Content-Length`` (digits
only) or from ``Transfer-Encoding: chunked`` alone. Everything else gets a
:class:`FramingError` with the status to answer (``400``; ``501`` for a
transfer coding gsse does not implement; ``505`` for HTTP/2.0 and such),
and the connection must then be closed without reading another byte.

The functions take text (bytes read as latin-1) and return plain values,
so any HTTP parser can use them: gsse's own connection layer
(:mod:`gsse.http.parser`) applies them where llhttp is lenient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "BodyFraming",
    "FramingError",
    "RequestLine",
    "body_framing",
    "check_host",
    "origin_form",
    "parse_chunk_line",
    "parse_field_lines",
    "parse_request_line",
]

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(f"[{_TCHARS}]+")
#: A method: a token, uppercase by universal practice (``get`` is refused).
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Z]+")
#: A request target: visible ASCII only (the rest must be percent-encoded).
_TARGET = re.compile(r"[\x21-\x7e]+")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
#: Never in a field value: controls other than HTAB, and DEL.
_DIGITS = re.compile(r"[0-9]+")
#: A whole ``name: value CRLF`` line: the value without its surrounding
#: whitespace, free of controls (HTAB aside) and DEL.
_VALUE = r"(?:[^\x00-\x20\x7f][^\x00-\x08\x0a-\x1f\x7f]*?)?"
_FIELD_LINE = re.compile(rf"([{_TCHARS}]+):[ \t]*({_VALUE})[ \t]*\r\n")
#: Longest Content-Length taken at face value (a 10**18 byte body is absurd).
_MAX_LENGTH_DIGITS = 18
#: A chunk-size line: 1-16 hex digits, then extensions (RFC 9112 §7.1.1).
_QUOTED = r'"(?:[\t !\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_CHUNK_EXT = rf"[ \t]*;[ \t]*[{_TCHARS}]+(?:[ \t]*=[ \t]*(?:[{_TCHARS}]+|{_QUOTED}))?"
_CHUNK_LINE = re.compile(rf"([0-9A-Fa-f]{{1,16}})(?:{_CHUNK_EXT})*\r\n")
#: A Host value (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal, or a
#: registered name or IPv4 address, then an optional port.
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    r"(?::[0-9]*)?"
)
#: Fields that may appear once: a second one makes the request ambiguous
#: (two ``Last-Event-ID`` would be joined with a comma into another position).
_SINGLETONS = ("host", "content-type", "content-length", "last-event-id")
#: Registered transfer codings: any other is ``501``, even alone.
_KNOWN_CODINGS = frozenset(
    ("chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress", "identity")
)


class FramingError(ValueError):
    """A request whose framing is malformed or ambiguous; answer ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestLine(NamedTuple):
    """A request line that passed :func:`parse_request_line`.

    (A tuple, not a frozen dataclass: one is made per request, and a frozen
    dataclass costs a microsecond to build.)
    """

    method: str
    target: str
    #: ``"HTTP/1.0"`` or ``"HTTP/1.1"``.
    version: str


class BodyFraming(NamedTuple):
    """How the request's body ends: chunked, after ``length`` bytes, or none."""

    chunked: bool = False
    #: ``None`` when chunked or when the request has no body.
    length: int | None = None


#: The framing of most requests, made once.
NO_BODY = BodyFraming()
CHUNKED = BodyFraming(chunked=True)
#: A request line with nothing to look at twice: the common case, in one match.
_PLAIN_REQUEST_LINE = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Z]+) (/[\x21-\x7e]*) (HTTP/1\.[01])\r\n"
)


def parse_request_line(line: str) -> RequestLine:
    """``METHOD SP target SP HTTP/1.x CRLF``, with nothing lax accepted.

    Refused (``400``): a missing CRLF, any separator but one space (tabs,
    ``\\x0b``, ``\\xa0``, two spaces), HTTP/0.9's two-word form, a method
    that is not an uppercase token, a target with spaces or controls or in
    the wrong form for its method, a version that is not ``HTTP/d.d``.
    A well-formed version other than 1.0 and 1.1 gets ``505``.
    """
    plain = _PLAIN_REQUEST_LINE.fullmatch(line)
    if plain is not None and plain[1] != "CONNECT":
        return RequestLine(*plain.groups())
    if not line.endswith("\r\n"):
        raise FramingError(400, "the request line does not end in CRLF")
    parts = line[:-2].split(" ")
    if len(parts) != 3:
        raise FramingError(
            400, "the request line is not 'METHOD target HTTP/1.1' (one space each)"
        )
    method, target, version = parts
    if not _METHOD.fullmatch(method):
        raise FramingError(400, "the request method is not an uppercase token")
    if not _TARGET.fullmatch(target):
        raise FramingError(400, "the request target is empty or has invalid bytes")
    if target == "*":
        if method != "OPTIONS":
            raise FramingError(400, "the '*' request target is only for OPTIONS")
    elif method == "CONNECT":
        if target.startswith("/"):
            raise FramingError(400, "CONNECT needs a host:port request target")
    elif not target.startswith("/") and "://" not in target:
        raise FramingError(400, "the request target must start with '/'")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise FramingError(400, "the HTTP version is malformed")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise FramingError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    return RequestLine(method, target, version)


def parse_field_lines(lines: Sequence[str]) -> list[tuple[str, str]]:
    """Header (or trailer) lines, each ending in CRLF, as ``(name, value)``.

    The list ends at the first empty line (or the end of ``lines``). A line
    with no colon, whitespace before the colon, a name that is not a token,
    a control character in the value or no CRLF is refused with ``400``
    (never quietly taken as the end of the headers). So is an obsolete
    folded line (one starting with a space or tab): RFC 9112 §5.2 allows
    joining it, but a proxy that does not may read ``X: a`` + `` Transfer-
    Encoding: chunked`` as two fields, and gunicorn refuses it by default.
    """
    fields: list[tuple[str, str]] = []
    match_line = _FIELD_LINE.fullmatch
    for raw in lines:
        match = match_line(raw)
        if match is not None:  # the common case, checked in one pass
            fields.append((match.group(1), match.group(2)))
            continue
        if raw == "\r\n":
            break
        if not raw.endswith("\r\n"):
            raise FramingError(400, "a request header line does not end in CRLF")
        if raw[:1] in (" ", "\t"):
            raise FramingError(400, "a request header line is folded (obs-fold)")
        raise FramingError(400, "a request header line is malformed")
    return fields


def parse_chunk_line(line: str) -> int:
    """The size of the chunk a ``chunk-size [chunk-ext] CRLF`` line starts.

    Hex digits only (no sign, no ``0x``, no spaces before the extensions),
    at most 16 of them; extensions must be ``;name[=token-or-quoted]``
    (they are ignored); no bare LF or other control character anywhere.
    """
    match = _CHUNK_LINE.fullmatch(line)
    if match is None:
        raise FramingError(400, "a chunk-size line of the request body is malformed")
    return int(match.group(1), 16)


def origin_form(target: str) -> tuple[str, str]:
    """``(authority, path?query)`` of an absolute-form target (RFC 9112 §3.2.2).

    A server must accept ``GET http://host/path``; left whole in
    ``PATH_INFO`` it routes nowhere (``404``) or, worse, differently in two
    routers. Only ``http`` and ``https`` with a valid ``host[:port]`` (no
    userinfo) are taken; anything else is ``400``.
    """
    scheme, _, rest = target.partition("://")
    if scheme.lower() not in ("http", "https"):
        raise FramingError(400, "an absolute request target must be http or https")
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority or not _HOST.fullmatch(authority):
        raise FramingError(400, "the request target's host is not a host[:port]")
    return authority, path if path.startswith("/") else "/" + path


def check_host(fields: Sequence[tuple[str, str]], version: str) -> None:
    """RFC 9112 §3.2: an HTTP/1.1 request has one valid ``Host``, or is ``400``.

    A value with spaces, slashes, ``@`` or quotes is no host: apps build
    links and redirects from it (the Host-header injection class), and
    nginx refuses it too. HTTP/1.0 may leave ``Host`` out.
    """
    hosts = [value for name, value in fields if name.lower() == "host"]
    if not hosts:
        if version == "HTTP/1.1":
            raise FramingError(400, "an HTTP/1.1 request needs a Host header")
        return
    if len(hosts) > 1:
        raise FramingError(400, "the request has more than one Host header")
    if not _HOST.fullmatch(hosts[0]):
        raise FramingError(400, "the Host header is not a host[:port]")


def body_framing(fields: Sequence[tuple[str, str]], version: str) -> BodyFraming:
    """How the body of a request with these header fields is delimited.

    RFC 9112 §6.1-6.3, the way gunicorn applies it: ``Transfer-Encoding``
    with ``Content-Length``, on HTTP/1.0, not ending in ``chunked`` or
    naming it twice is ``400``; another coding before ``chunked`` is
    ``501`` (gsse decodes none), as is an unknown coding; ``Content-Length``
    must be digits, once. A second ``Host``, ``Content-Type`` or
    ``Last-Event-ID`` is ``400``.
    """
    lengths: list[str] = []
    codings: list[str] = []
    seen: dict[str, int] = {}
    for name, value in fields:
        key = name.lower()
        if key in _SINGLETONS:
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                raise FramingError(400, f"the request has more than one {name} header")
        if key == "content-length":
            lengths.append(value)
        elif key == "transfer-encoding":
            codings += [coding.strip(" \t").lower() for coding in value.split(",")]
    if codings:
        if lengths:
            raise FramingError(
                400, "the request has both Transfer-Encoding and Content-Length"
            )
        if version != "HTTP/1.1":
            raise FramingError(400, "Transfer-Encoding needs HTTP/1.1")
        if any(not _TOKEN.fullmatch(coding) for coding in codings):
            raise FramingError(400, "the Transfer-Encoding header is malformed")
        unknown = [coding for coding in codings if coding not in _KNOWN_CODINGS]
        if unknown:
            raise FramingError(501, "only the chunked transfer coding is supported")
        if codings[-1] != "chunked" or codings.count("chunked") > 1:
            raise FramingError(
                400, "the request's Transfer-Encoding must end in chunked, once"
            )
        if len(codings) > 1:
            raise FramingError(501, "only the chunked transfer coding is supported")
        return CHUNKED
    if not lengths:
        return NO_BODY
    value = lengths[0]
    if not _DIGITS.fullmatch(value):
        raise FramingError(400, "Content-Length is not a number of bytes")
    if len(value.lstrip("0")) > _MAX_LENGTH_DIGITS:
        raise FramingError(413, "the request body is too large")
    return BodyFraming(length=int(value))
