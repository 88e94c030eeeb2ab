"""Response headers a user passes for a stream, checked before anything is sent.

A stream's headers go out before its callback runs, and once they are on the
wire nothing can be taken back. werkzeug's ``Headers`` refuses CR and LF in
values but lets NUL, ESC and other control characters through, and accepts
any name; a value such as ``"x\\x1b[2J"`` would reach the client or an
intermediary's logs as is. So the names and values given to
``start_sse(headers=...)``, :func:`gsse.stream` and ``Broker.stream`` are
checked here, at the call, against RFC 9110:

- a name is a ``token`` (section 5.1: letters, digits and
  ``!#$%&'*+-.^_`|~``);
- a value holds no control character but HTAB (section 5.5: ``field-vchar``,
  ``SP``, ``HTAB``), C1 controls (U+0080 to U+009F) included, and only
  characters latin-1 can carry, as HTTP/1.1 sends them;
- a stream's headers never frame the message: ``Content-Length``,
  ``Transfer-Encoding`` and the hop-by-hop headers (RFC 9110 section 7.6.1,
  PEP 3333) belong to the server. A ``Content-Length: 0`` would make a
  keep-alive client or proxy read the events as the next response.

Sans-IO: no gevent, no sockets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping

from werkzeug.datastructures import Headers

__all__ = ["SSE_HEADERS", "check_header", "check_headers", "stream_head"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

#: Headers that frame the response or the connection: set by the server only.
FRAMING = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: What gsse accepts as extra response headers.
HeadersLike = Mapping[str, str] | Headers | Iterable[tuple[str, str]]


def check_header(name: object, value: object) -> tuple[str, str]:
    """Return ``(name, value)`` as strings, or raise saying what to fix.

    :raises TypeError: the name is not a ``str``, or the value not a ``str``
        or ``int``.
    :raises ValueError: the name is not an RFC 9110 token, or the value
        holds a control character other than HTAB, or a character beyond
        latin-1.
    """
    if not isinstance(name, str):
        raise TypeError(f"a header name must be a str, got {name!r}")
    if not _TOKEN.fullmatch(name):
        raise ValueError(
            f"header name {name!r} is not an HTTP token; use letters, digits and"
            " !#$%&'*+-.^_`|~ only, e.g. 'X-Stream-Id'"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"the value of header {name!r} must be a str, got {value!r}")
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(
            f"the value of header {name!r} holds the control character"
            f" {bad.group()!r}: {value!r}; remove it (only tab is allowed)"
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the value of header {name!r} holds {value[exc.start]!r}, which"
            f" HTTP/1.1 cannot carry: {value!r}; percent-encode it (RFC 8187)"
        ) from None
    return name, value


def check_headers(headers: HeadersLike | None) -> Headers | None:
    """Checked copies of user headers for a stream; ``None`` when there are none.

    :raises TypeError: see :func:`check_header`.
    :raises ValueError: see :func:`check_header`.
    """
    if headers is None:
        return None
    if isinstance(headers, Headers):
        items: Iterable[tuple[object, object]] = headers.items()
    elif isinstance(headers, Mapping):
        items = headers.items()
    elif isinstance(headers, (str, bytes)):
        raise TypeError(
            f"headers must be a mapping of names to values, got {headers!r}"
        )
    else:
        items = headers
    checked = Headers()
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(
                f"headers must be a mapping or (name, value) pairs, got {item!r}"
            ) from None
        name, value = check_header(name, value)
        if name.lower() in FRAMING:
            raise ValueError(
                f"a stream may not set the header {name!r}: the server frames"
                " the response and the connection itself; remove it"
            )
        checked.add(name, value)
    return checked or None


#: A stream's response headers unless the user gives their own.
SSE_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
)


def stream_head(headers: Headers | None) -> list[tuple[str, str]]:
    """A stream's response headers: the SSE defaults, replaced by any of the
    same name in the checked user ``headers`` (a name given twice, such as
    ``Set-Cookie``, is sent twice)."""
    if not headers:
        return list(SSE_HEADERS)
    replaced = {name.lower() for name, _ in headers.items()}
    head = [item for item in SSE_HEADERS if item[0].lower() not in replaced]
    head += headers.items()
    return head
