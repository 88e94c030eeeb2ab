"""A request head (request line and header fields), parsed and checked.

httptools (llhttp) parses the head in C and refuses what RFC 9112 refuses:
bare CR or LF, NUL and other controls, whitespace before a colon,
obs-fold, a malformed ``Content-Length``, ``Transfer-Encoding`` beside
``Content-Length``. Where llhttp is lenient (two spaces in the request
line, ``Transfer-Encoding`` on HTTP/1.0 or with an empty element, a second
``Host``), :mod:`gsse.framing` decides, as it did for pywsgi; its status
(``501`` for an unknown coding, ``505`` for HTTP/2.0) wins over llhttp's
generic ``400``. Only the head is given to llhttp: bodies are read by
:mod:`gsse.http.body`, whose chunk parser is gsse's strict one.
"""

from __future__ import annotations

import httptools

from ..framing import NO_BODY
from ..framing import FramingError
from ..framing import body_framing
from ..framing import check_host
from ..framing import origin_form
from ..framing import parse_request_line

__all__ = ["Head", "parse_head"]

#: llhttp's reasons that mean "too large", not "malformed".
_TOO_LARGE = ("Content-Length overflow",)


class Head:
    """One request's line and header fields, as text (bytes read as latin-1)."""

    __slots__ = (
        "method",
        "target",
        "path",
        "query",
        "version",
        "fields",
        "length",
        "chunked",
        "keep_alive",
        "expect_continue",
        "authority",
        "requestline",
    )

    def __init__(self) -> None:
        self.method = ""
        self.target = ""
        self.path = ""
        self.query = ""
        self.version = "HTTP/1.1"
        self.fields: list[tuple[str, str]] = []
        #: The body's Content-Length (``None``: chunked or no body).
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        #: The authority of an absolute-form target (``None``: origin-form).
        self.authority: str | None = None
        self.requestline = ""


#: The fields that decide framing, host and keep-alive (lowercase): the
#: checks below look at these only, not at every field again.
_DECIDING = frozenset(
    (
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "last-event-id",
        "connection",
        "expect",
    )
)


class _Fields:
    """llhttp's callbacks: collect the fields, check framing at their end."""

    __slots__ = ("fields", "deciding", "version", "error", "framing", "max_count")

    def __init__(self, version: str, max_count: int) -> None:
        self.max_count = max_count
        self.fields: list[tuple[str, str]] = []
        #: ``(lowercase name, value)`` of the fields in :data:`_DECIDING`.
        self.deciding: list[tuple[str, str]] = []
        self.version = version
        self.error: FramingError | None = None
        self.framing = NO_BODY

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self.fields
        if len(fields) >= self.max_count:
            self.error = FramingError(431, "the request has too many header lines")
            raise self.error
        # llhttp trims leading whitespace; trailing spaces and tabs are OWS.
        field = (name.decode("latin-1"), value.rstrip(b" \t").decode("latin-1"))
        fields.append(field)
        lowered = field[0].lower()
        if lowered in _DECIDING:
            self.deciding.append((lowered, field[1]))

    def on_headers_complete(self) -> None:
        # Before llhttp's own checks of the framing: its 400 for an unknown
        # coding would hide the 501 gsse answers.
        try:
            check_host(self.deciding, self.version)
            self.framing = body_framing(self.deciding, self.version)
        except FramingError as exc:
            self.error = exc
            raise


def _parse(data: bytes, version: str, max_header_count: int) -> _Fields:
    """The fields of the head ``data``, checked by llhttp and :mod:`gsse.framing`."""
    collector = _Fields(version, max_header_count)
    try:
        httptools.HttpRequestParser(collector).feed_data(data)
    except httptools.HttpParserUpgrade:
        pass  # gsse serves no protocol upgrade: the body is framed as usual
    except httptools.HttpParserInvalidMethodError:
        raise
    except httptools.HttpParserError as exc:
        if collector.error is not None:
            raise collector.error from None
        reason = str(exc)
        status = 413 if reason in _TOO_LARGE else 400
        raise FramingError(status, f"the request is malformed ({reason})") from None
    return collector


def parse_head(data: bytes, max_header_count: int) -> Head:
    """The request head ``data`` (through its empty line), or :class:`FramingError`."""
    end = data.find(b"\r\n")
    requestline = data[: end + 2].decode("latin-1") if end >= 0 else ""
    request = parse_request_line(requestline)
    head = Head()
    head.requestline = requestline[:-2]
    head.method = request.method
    head.version = request.version
    target = request.target
    if "://" in target and request.method != "CONNECT":
        head.authority, target = origin_form(target)
    head.target = target
    path, _, head.query = target.partition("?")
    head.path = path
    try:
        collector = _parse(data, request.version, max_header_count)
    except httptools.HttpParserInvalidMethodError:
        # llhttp knows the registered methods only; any uppercase token
        # passed parse_request_line (as gunicorn allows): parse the rest.
        data = b"GET" + data[len(request.method) :]
        try:
            collector = _parse(data, request.version, max_header_count)
        except httptools.HttpParserInvalidMethodError as exc:
            raise FramingError(400, f"the request is malformed ({exc})") from None
    head.fields = collector.fields
    framing = collector.framing
    head.length = framing.length
    head.chunked = framing.chunked
    tokens: set[str] = set()
    for lowered, value in collector.deciding:
        if lowered == "connection":
            # Every Connection line counts (a list may span several lines).
            tokens.update(t.strip(" \t").lower() for t in value.split(","))
        elif lowered == "expect":
            head.expect_continue = value.lower() == "100-continue"
    if request.version == "HTTP/1.1":
        head.keep_alive = "close" not in tokens
    else:
        head.keep_alive = "keep-alive" in tokens and "close" not in tokens
    return head
