"""``start_response``, ``write()`` and the framing of one response.

As pywsgi frames it: ``Content-Length`` when the app gives it or the body
is a list or tuple (summed), else chunked on HTTP/1.1 (and the connection
closes after the body on HTTP/1.0); ``204``, ``304`` and ``1xx`` have no
body, nor does any response to ``HEAD`` (RFC 9110 §9.3.2). A response
after which the connection closes says ``Connection: close``; on HTTP/1.0
one that keeps it says ``keep-alive``. Status and headers are checked when
``start_response`` is called (PEP 3333), and the head and a small first
body piece leave in one send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from ..chunked import LAST_CHUNK
from ..chunked import chunk

__all__ = ["Response", "http_date"]

#: First body writes up to this size go out with the response head in one send.
SMALL_FIRST_WRITE = 16 * 1024
_date_cache: list[Any] = [0, b""]


def http_date() -> bytes:
    """The ``Date`` header value, formatted at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode("latin-1")
    return _date_cache[1]  # type: ignore[no-any-return]


class Response:
    """The response to one request, written to ``send`` (a ``sendall``)."""

    __slots__ = (
        "sendall",
        "head_only",
        "version",
        "keep_alive",
        "status",
        "code",
        "headers",
        "headers_sent",
        "chunked",
        "length",
        "provided_length",
        "provided_date",
        "provided_connection",
        "result",
        "no_body",
        "awaits_continue",
    )

    def __init__(
        self, send: Callable[[bytes], Any], method: str, version: str, keep_alive: bool
    ) -> None:
        self.sendall = send
        self.head_only = method == "HEAD"
        self.version = version
        #: Whether the connection may serve another request after this one.
        self.keep_alive = keep_alive
        self.status = ""
        self.code = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.chunked = False
        #: Bytes sent, head and framing included (for the access log).
        self.length = 0
        self.provided_length: str | None = None
        self.provided_date = False
        self.provided_connection = False
        #: The app's iterable, once returned (its length may frame the body).
        self.result: Any = None
        self.no_body = False
        #: Whether the client still waits for a ``100 Continue`` (then the
        #: connection cannot go on: it may or may not send the body).
        self.awaits_continue: Callable[[], bool] | None = None

    def send(self, data: bytes) -> None:
        """Send ``data`` as it is, counted."""
        self.length += len(data)
        self.sendall(data)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status:
            raise AssertionError("start_response() was already called")
        if not isinstance(status, str):
            raise TypeError(f"the status must be a str, got {status!r}")
        if "\r" in status or "\n" in status:
            raise ValueError(f"carriage return or newline in status {status!r}")
        code = int(status.split(" ", 1)[0])
        provided_length = None
        provided_date = provided_connection = False
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(
                    f"header names and values must be str, got {(name, value)!r}"
                )
            lowered = name.lower()
            if lowered == "connection":
                provided_connection = True
                if value.lower() == "close":
                    self.keep_alive = False
            elif lowered == "content-length":
                provided_length = value
            elif lowered == "date":
                provided_date = True
        # One look at all the text for what may not go on the wire.
        text = "".join([status, *(name + value for name, value in headers)])
        if "\r" in text or "\n" in text:
            raise ValueError(
                f"carriage return or newline in the status or a header: {status!r},"
                f" {headers!r}"
            )
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise UnicodeError(f"a header is not latin-1: {headers!r}") from None
        if code in (204, 304) and provided_length not in (None, "0"):
            raise ValueError(
                f"Content-Length {provided_length!r} on a {code} response"
                " (must be absent or 0)"
            )
        self.status = status
        self.code = code
        self.headers = list(headers)
        self.provided_length = provided_length
        self.provided_date = provided_date
        self.provided_connection = provided_connection
        return self.write

    def _head(self) -> bytes:
        """The status line and headers, framing decided (called once)."""
        self.headers_sent = True
        code = self.code
        lines = [f"HTTP/1.1 {self.status}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        self.no_body = code in (204, 304) or code < 200
        if not self.no_body and self.provided_length is None:
            result = self.result
            if isinstance(result, (list, tuple)):
                lines.append(f"Content-Length: {sum(map(len, result))}")
            elif self.version == "HTTP/1.1":
                self.chunked = True
                lines.append("Transfer-Encoding: chunked")
            else:
                self.keep_alive = False  # the body ends where the connection does
        if self.awaits_continue is not None and self.awaits_continue():
            self.keep_alive = False
        if not self.provided_connection:
            if not self.keep_alive:
                lines.append("Connection: close")
            elif self.version == "HTTP/1.0":
                lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines)).encode("latin-1")
        if not self.provided_date:
            head += b"\r\nDate: " + http_date()
        return head + b"\r\n\r\n"

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``, also used for each piece of the body."""
        if not self.status:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, bytes):
            raise TypeError(
                f"a response body piece must be bytes, got {type(data).__name__}"
            )
        if not self.headers_sent:
            if len(data) <= SMALL_FIRST_WRITE:
                self.send(self.first_bytes(data))
                return
            self.send(self.first_bytes(b""))
        if not data or self.head_only or self.no_body:
            return
        self.send(chunk(data) if self.chunked else data)

    def first_bytes(self, data: bytes) -> bytes:
        """The head and the framed first piece ``data``, for one send by the
        caller (a stream's transport sends them with its first event)."""
        head = self._head()
        if self.head_only or self.no_body or not data:
            return head
        return head + (chunk(data) if self.chunked else data)

    def send_result(self, result: Any) -> None:
        """Send the app's iterable ``result`` (never iterated for ``HEAD``)."""
        self.result = result
        if self.head_only:
            if not self.status and not isinstance(result, (list, tuple)):
                # A generator calls start_response when first advanced.
                for _ in result:
                    if self.status:
                        break
            if not self.status:
                raise AssertionError("the application did not call start_response()")
            if not self.headers_sent:
                self.write(b"")
            return
        if isinstance(result, (list, tuple)) and not self.headers_sent:
            data = b"".join(result) if len(result) != 1 else result[0]
            if not self.status:
                raise AssertionError("the application did not call start_response()")
            self.write(data)
        else:
            for data in result:
                if data:
                    self.write(data)
            if not self.status:
                raise AssertionError("the application did not call start_response()")
            if not self.headers_sent:
                self.write(b"")
        if self.chunked:
            self.send(LAST_CHUNK)
