"""A connection's socket and read buffer: request heads and body bytes.

One buffer per connection (no file objects per request): a head is
complete at its first empty line, and bytes after it (a body, the next
pipelined request) stay in the buffer for the next reader.
"""

from __future__ import annotations

import time
from typing import Any

from ..framing import FramingError

__all__ = ["HeadTimeout", "SocketReader"]

#: Bytes asked of the socket at once.
RECV_SIZE = 64 * 1024
#: The longest request line (pywsgi's limit too): longer is ``414``.
MAX_REQUEST_LINE = 8192


class HeadTimeout(Exception):
    """The client began a request and did not finish its head in time."""


class SocketReader:
    """Reads a connection's bytes into one buffer."""

    __slots__ = ("sock", "buffer", "eof", "timeout")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False
        #: The socket's timeout, as last set here (gevent's default: none).
        self.timeout: float | None = sock.gettimeout() if sock is not None else None

    def fill(self, timeout: float | None) -> bool:
        """Receive more bytes (waiting up to ``timeout``); ``False`` at EOF.

        A timeout raises ``TimeoutError``; a reset raises ``OSError``.
        """
        sock = self.sock
        if timeout != self.timeout:  # gevent's settimeout() is Python code
            sock.settimeout(timeout)
            self.timeout = timeout
        data = sock.recv(RECV_SIZE)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_head(self, timeout: float | None, max_header_size: int) -> bytes | None:
        """The next request head, through its empty line, taken off the buffer.

        ``None`` when the connection ended (or stayed silent ``timeout``
        seconds) before the first byte of a request. A head begun and not
        finished in ``timeout`` is :class:`HeadTimeout`; one too long is a
        :class:`~gsse.framing.FramingError` (``414`` or ``431``).
        """
        buffer = self.buffer
        # RFC 9112 §2.2: ignore empty lines before a request (some clients
        # send a CRLF after a body).
        while buffer[:2] == b"\r\n":
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            deadline = None if timeout is None else time.monotonic() + timeout
            scanned = 0
            while end < 0:
                self._check_size(max_header_size)
                scanned = max(0, len(buffer) - 3)
                left = None if deadline is None else deadline - time.monotonic()
                try:
                    if (left is not None and left <= 0) or not self.fill(left):
                        if not buffer.strip(b"\r\n"):
                            return None
                        if self.eof:
                            raise FramingError(400, "the request ended inside its head")
                        raise HeadTimeout()
                except TimeoutError:
                    if not buffer.strip(b"\r\n"):
                        return None
                    raise HeadTimeout() from None
                while buffer[:2] == b"\r\n":
                    del buffer[:2]
                    scanned = 0
                end = buffer.find(b"\r\n\r\n", scanned)
        if end > MAX_REQUEST_LINE or end > max_header_size:
            self._check_size(max_header_size, end)
        head = bytes(buffer[: end + 4])
        del buffer[: end + 4]
        return head

    def _check_size(self, max_header_size: int, end: int | None = None) -> None:
        buffer = self.buffer
        size = len(buffer) if end is None else end
        line_end = buffer.find(b"\r\n", 0, MAX_REQUEST_LINE + 2)
        if line_end < 0:
            if size > MAX_REQUEST_LINE:
                raise FramingError(414, "the request line is too long")
            return
        if size - line_end - 2 > max_header_size:
            raise FramingError(431, "the request headers are too large")

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes from the buffer (which must not be empty)."""
        buffer = self.buffer
        if size >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:size])
            del buffer[:size]
        return data
