"""``wsgi.input``: the request body, read lazily, capped in size and in time.

The body is read from the connection's buffer and socket only when the app
asks, ``Content-Length`` bytes or strictly checked chunks
(:func:`gsse.framing.parse_chunk_line`), and ends with ``b""`` (so
``wsgi.input_terminated`` holds). Every failure is a client error
(:mod:`gsse.body`'s ``400``, ``408``, ``413``), raised again on every later
read; the connection then closes, since what follows a broken body cannot
be trusted to be a request. ``Expect: 100-continue`` is answered at the
first read, if no response has started.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..body import BadBody
from ..body import BodyTimeout
from ..body import BodyTooLarge
from ..body import LineReader
from ..framing import FramingError
from ..framing import parse_chunk_line
from ..framing import parse_field_lines
from .reader import SocketReader

__all__ = ["RequestBody"]

#: Longest chunk-size line (extensions included) and trailer section.
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 16 * 1024
#: Most bytes returned by one read (a huge ``read()`` is served in pieces).
PIECE = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class RequestBody(LineReader):
    """A request's ``wsgi.input``.

    :param reader: the connection's buffer and socket.
    :param length: the ``Content-Length`` (``None`` with ``chunked``).
    :param chunked: the body is chunked.
    :param on_error: called with the error at the first failure.
    :param limit: bytes a chunked body may have (``None``: any).
    :param idle_timeout: seconds to wait for the next bytes (``None``: ever).
    :param total_timeout: seconds all reads may wait in all (``None``: ever).
    :param expect_continue: answer ``100 Continue`` at the first read,
        unless ``started()`` says the response has begun.
    """

    def __init__(
        self,
        reader: SocketReader,
        length: int | None,
        chunked: bool,
        on_error: Callable[[BaseException], None],
        limit: int | None = None,
        idle_timeout: float | None = None,
        total_timeout: float | None = None,
        expect_continue: bool = False,
        started: Callable[[], bool] = lambda: False,
    ) -> None:
        self._reader = reader
        #: Bytes left in the current chunk, or of the Content-Length body.
        self._left = length or 0
        self._chunked = chunked
        self._done = not chunked and not length
        self._on_error = on_error
        self._limit = limit
        self._idle = idle_timeout
        self._budget = total_timeout
        self._expect = expect_continue
        self._started = started
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        """The whole body has been read."""
        return self._done

    @property
    def awaits_continue(self) -> bool:
        """The client waits for a ``100 Continue`` that was never sent."""
        return self._expect and not self._done

    # -- the bytes ---------------------------------------------------------

    def _fill(self) -> None:
        """More bytes into the buffer, within the timeouts; EOF is an error."""
        if self._expect:
            self._expect = False
            if not self._started():
                self._reader.sock.sendall(CONTINUE)
        idle, budget = self._idle, self._budget
        timeout = (
            idle if budget is None else budget if idle is None else min(idle, budget)
        )
        if budget is not None and budget <= 0:
            raise BodyTimeout("the request body arrived too slowly")
        started = time.monotonic()
        try:
            more = self._reader.fill(timeout)
        except TimeoutError:
            raise BodyTimeout("the request body arrived too slowly") from None
        finally:
            if budget is not None:
                self._budget = budget - (time.monotonic() - started)
        if not more:
            raise _cut_short("the connection ended inside the body")

    def _line(self, limit: int) -> str:
        buffer = self._reader.buffer
        while True:
            end = buffer.find(b"\n", 0, limit)
            if end >= 0:
                return self._reader.take(end + 1).decode("latin-1")
            if len(buffer) >= limit:
                return self._reader.take(limit).decode("latin-1")
            self._fill()

    def _next_chunk(self) -> None:
        """Start the next chunk: its size line (and the trailers at the end)."""
        size = parse_chunk_line(self._line(MAX_CHUNK_LINE + 2))
        if size == 0:
            trailers: list[str] = []
            total = 0
            while not trailers or trailers[-1] != "\r\n":
                line = self._line(MAX_CHUNK_LINE + 2)
                total += len(line)
                if total > MAX_TRAILERS or not line.endswith("\r\n"):
                    raise FramingError(400, "the trailers are malformed")
                trailers.append(line)
            parse_field_lines(trailers)
            self._done = True
        self._left = size

    def _piece(self, size: int) -> bytes:
        """Up to ``size`` (> 0) bytes of the body; ``b""`` at its end."""
        if self.error is not None:
            raise self.error
        try:
            if self._chunked and not self._left and not self._done:
                self._next_chunk()
            if self._done and not self._left:
                return b""
            if not self._reader.buffer:
                self._fill()
            data = self._reader.take(min(size, self._left))
            self._left -= len(data)
            if self._chunked:
                if self._limit is not None:
                    self._limit -= len(data)
                    if self._limit < 0:
                        raise BodyTooLarge("the request body is too large")
                if not self._left:
                    if self._line(3) != "\r\n":
                        raise _cut_short("a chunk is longer than its size")
            elif not self._left:
                self._done = True
            return data
        except FramingError as exc:
            raise self._fail(_cut_short(str(exc))) from None
        except (BadBody, BodyTimeout, BodyTooLarge) as exc:
            raise self._fail(exc) from None
        except OSError as exc:
            raise self._fail(_cut_short(str(exc))) from None

    def _fail(self, error: BaseException) -> BaseException:
        self.error = error
        self._on_error(error)
        return error

    # -- the file API ------------------------------------------------------

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and 0 <= size <= PIECE:
            return self._piece(size) if size else b""
        left = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        while left:
            piece = self._piece(PIECE if left < 0 else min(left, PIECE))
            if not piece:
                break
            parts.append(piece)
            if left > 0:
                left -= len(piece)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        left = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        while left:
            if self.error is not None:
                raise self.error
            buffer = self._reader.buffer
            # The part of this chunk (or body) already in the buffer.
            window = min(len(buffer), self._left) if self._left else 0
            end = buffer.find(b"\n", 0, window) if window else -1
            want = end + 1 if end >= 0 else max(window, 1)
            if left > 0:
                want = min(want, left)
            piece = self._piece(want)
            if not piece:
                break
            parts.append(piece)
            if left > 0:
                left -= len(piece)
            if piece.endswith(b"\n"):
                break
        return b"".join(parts)

    def discard_rest(self) -> None:
        """Read what the app left unread, so the connection can go on."""
        while self._piece(PIECE):
            pass


def _cut_short(detail: str) -> BadBody:
    error = BadBody("the request body is malformed or cut short")
    error.detail = detail  # for the log only, never the response
    return error
