"""HTTP/1.1 chunked framing of a response body (RFC 9112 section 7.1).

The HTTP side of a stream, kept apart from :mod:`gsse.wire` (the
``text/event-stream`` format, which knows nothing of HTTP): a
:class:`~gsse.streams.Stream` over a socket frames each write, and
:func:`~gsse.streams.broadcast` frames an event once for every stream it
goes to.
"""

from __future__ import annotations

__all__ = ["LAST_CHUNK", "chunk"]

#: The last chunk, with no trailers: the body ends here.
LAST_CHUNK = b"0\r\n\r\n"


def chunk(payload: bytes) -> bytes:
    """Frame ``payload`` as one chunk: its length in hex, CRLF, it, CRLF.

    An empty payload would read as the last chunk and end the body early,
    so callers never pass one (every SSE write has at least its blank line).
    """
    return b"%x\r\n%b\r\n" % (len(payload), payload)
