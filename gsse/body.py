"""A request body as the app reads it: capped in size and in time.

pywsgi's ``Input`` reads a body for as long as the client cares to send it,
and a client that sends one byte every few seconds holds a connection (and
with ``max_connections``, the server) forever; a broken chunked body or a
connection that ends early reaches the app as a bare ``OSError`` or
``ValueError``, which the app answers with ``500`` and a traceback.
:class:`BodyReader` wraps that input: every failure becomes a client error
(``400`` malformed or cut short, ``408`` too slow, ``413`` too large), the
connection is marked to close (what follows the body can no longer be
trusted to be a request), and the error is raised again on every later read.

The errors are werkzeug ``HTTPException``\\ s, so Flask and :class:`gsse.App`
answer them with their status, and pywsgi's own client-input error, so
pywsgi answers them (as ``400``) when a plain WSGI app lets them through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.exceptions import RequestTimeout

from .framing import FramingError
from .framing import parse_chunk_line
from .framing import parse_field_lines
from .pywsgi_glue import ClientInputError
from .pywsgi_glue import InputDiscard
from .pywsgi_glue import StrictChunkedInput

__all__ = ["BadBody", "BodyReader", "BodyTimeout", "BodyTooLarge", "ChunkedInput"]

#: Longest chunk-size line (extensions included) and trailer section.
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 16 * 1024
#: Most bytes asked of the socket at once. A client declares a chunk (or a
#: Content-Length) of any size; asking for it whole would allocate it up
#: front (OverflowError or MemoryError: a 500) and check the size limit only
#: once it had all arrived.
PIECE = 64 * 1024


class BadBody(BadRequest, ClientInputError):  # type: ignore[misc]
    """The body is malformed (a bad chunk) or the connection ended inside it."""

    #: What exactly went wrong (logged, escaped; not sent to the client).
    detail = ""


class BodyTimeout(RequestTimeout, ClientInputError):  # type: ignore[misc]
    """The client sent its body too slowly."""


class BodyTooLarge(RequestEntityTooLarge, ClientInputError):  # type: ignore[misc]
    """The body is larger than ``max_body_size``."""


BodyError = BadBody | BodyTimeout | BodyTooLarge


class ChunkedInput(StrictChunkedInput):
    """pywsgi's chunked ``Input``, with gsse's strict chunk-size lines.

    pywsgi reads a chunk extension up to the next CR, whatever it holds (a
    bare LF included, which a proxy may take for a line end); here every
    chunk-size line and trailer is checked by :mod:`gsse.framing`.
    """

    __slots__ = ()

    def read_chunk_length(self, rfile: Any) -> int:
        size = parse_chunk_line(_line(rfile, MAX_CHUNK_LINE))
        if size == 0:
            trailers: list[str] = []
            total = 0
            while not trailers or trailers[-1] != "\r\n":
                line = _line(rfile, MAX_CHUNK_LINE)
                total += len(line)
                if total > MAX_TRAILERS or not line.endswith("\r\n"):
                    raise FramingError(400, "the trailers are malformed")
                trailers.append(line)
            parse_field_lines(trailers)
        return size


def _line(rfile: Any, limit: int) -> str:
    return str(rfile.readline(limit + 1).decode("latin-1"))


class _TotalTimeout(Exception):
    """Raised by a gevent timer in a read that ran past the total budget."""


class BodyReader(InputDiscard):
    """``wsgi.input`` over pywsgi's ``Input``, with limits and clean errors.

    :param inner: pywsgi's ``Input`` for this request.
    :param sock: the connection, whose timeout bounds each wait for bytes.
    :param on_error: called with the error on the first failure (the
        handler closes the connection and logs it), or with ``None`` when
        the connection must close for want of a body that was never asked for.
    :param limit: bytes the body may have (``None``: any).
    :param idle_timeout: seconds to wait for the next bytes (``None``: ever).
    :param total_timeout: seconds all reads together may wait (``None``: ever).
    """

    def __init__(
        self,
        inner: Any,
        sock: Any,
        on_error: Callable[[BaseException | None], None],
        limit: int | None = None,
        idle_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None:
        self._inner = inner
        self._sock = sock
        self._on_error = on_error
        self._left = limit
        self._idle = idle_timeout
        self._budget = total_timeout
        self.error: BaseException | None = None

    def _read(self, method: Callable[..., Any], *args: Any) -> Any:
        if self.error is not None:
            raise self.error
        sock = self._sock
        old_timeout = sock.gettimeout()
        budget = self._budget
        timer = None
        started = time.monotonic()
        try:
            sock.settimeout(self._idle)
            if budget is not None:
                timer = gevent.Timeout.start_new(max(budget, 0.001), _TotalTimeout)
            data = method(*args)
        except (TimeoutError, _TotalTimeout):
            error = BodyTimeout("the request body arrived too slowly")
            raise self._fail(error) from None
        except (OSError, ValueError) as exc:
            # pywsgi's chunk errors (ClientInputError, ValueError for an
            # empty size line), an early EOF or a reset: the client's fault.
            error = BadBody("the request body is malformed or cut short")
            error.detail = str(exc)  # for the log only, never the response
            raise self._fail(error) from None
        finally:
            if timer is not None:
                timer.close()
            if budget is not None:
                self._budget = budget - (time.monotonic() - started)
            try:
                sock.settimeout(old_timeout)
            except OSError:
                pass  # closed meanwhile
        if self._left is not None:
            size = sum(map(len, data)) if isinstance(data, list) else len(data)
            self._left -= size
            if self._left < 0:
                raise self._fail(BodyTooLarge("the request body is too large"))
        return data

    def _fail(self, error: BaseException) -> BaseException:
        self.error = error
        self._on_error(error)
        return error

    def read(self, size: int | None = -1) -> bytes:
        return self._pieces(self._inner.read, size, line=False)

    def readline(self, size: int | None = -1) -> bytes:
        return self._pieces(self._inner.readline, size, line=True)

    def _pieces(
        self, method: Callable[..., Any], size: int | None, line: bool
    ) -> bytes:
        """``method(size)`` asked :data:`PIECE` bytes at a time, limits checked."""
        left = -1 if size is None or size < 0 else size
        if 0 <= left <= PIECE:
            data: bytes = self._read(method, left)
            return data
        parts: list[bytes] = []
        while left:
            piece: bytes = self._read(method, PIECE if left < 0 else min(left, PIECE))
            if not piece:
                break
            parts.append(piece)
            if left > 0:
                left -= len(piece)
            if line and piece.endswith(b"\n"):
                break
        return b"".join(parts)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return list(self)

    def __iter__(self) -> BodyReader:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def discard_rest(self) -> None:
        """Read what the app left unread (pywsgi asks after the app)."""
        if self.error is not None:
            return
        if getattr(self._inner, "socket", None) is not None:
            # The client waits for "100 Continue" the app never asked for: it
            # may or may not send the body, so the connection cannot go on.
            self._on_error(None)
            return
        while self.read(16384):
            pass
