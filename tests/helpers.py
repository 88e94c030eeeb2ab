"""Test clients that speak HTTP over real sockets, with every wait bounded."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from gsse import App
from gsse import Event
from gsse import SSEWriter
from gsse.wire import EventStreamDecoder
from gsse.wire import Message

#: The least time a helper here waits for what a test expects. Each of these
#: waits ends in a failure when its bound passes, so the bound only decides
#: how long a failing test takes; on a loaded 2-core CI machine a success
#: can take seconds. Tests assert what happened and in which order, never
#: how fast (pytest-timeout still ends a test that hangs).
PATIENCE = 60.0


def deadline_after(timeout: float) -> float:
    """The monotonic deadline of a wait of ``timeout`` s, made at least PATIENCE."""
    return time.monotonic() + max(timeout, PATIENCE)


class StreamClosed(Exception):
    """The server ended the response."""


class RawStream:
    """A byte-exact HTTP/1.x client for one streaming response.

    It de-chunks the body itself, so tests can assert exact wire bytes and
    see whether the chunked body ended properly (``ended``) or the
    connection was cut (``cut``).
    """

    def __init__(
        self,
        port: int,
        path: str = "/events",
        *,
        headers: dict[str, str] | None = None,
        version: str = "1.1",
        method: str = "GET",
        host: str = "127.0.0.1",
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        lines = [f"{method} {path} HTTP/{version}", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self._raw = b""
        self.body = b""
        self.ended = False
        self.cut = False
        self.decoder = EventStreamDecoder()
        self._read_head(timeout)

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        return data

    def _read_head(self, timeout: float) -> None:
        deadline = deadline_after(timeout)
        while b"\r\n\r\n" not in self._raw:
            data = self._recv(deadline)
            if not data:
                raise StreamClosed(f"connection closed before headers: {self._raw!r}")
            self._raw += data
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status_line = status_line
        self.status = int(status_line.split()[1])
        self.headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self._dechunk()

    def _dechunk(self) -> bytes:
        """Move complete body bytes from ``_raw`` to ``body``; return them."""
        new = b""
        if not self.chunked:
            new, self._raw = self._raw, b""
        else:
            while not self.ended:
                size_end = self._raw.find(b"\r\n")
                if size_end < 0:
                    break
                size = int(self._raw[:size_end].split(b";")[0], 16)
                if size == 0:
                    if self._raw[size_end + 2 : size_end + 4] == b"\r\n":
                        self.ended = True
                        self._raw = self._raw[size_end + 4 :]
                    break
                start = size_end + 2
                if len(self._raw) < start + size + 2:
                    break
                assert self._raw[start + size : start + size + 2] == b"\r\n"
                new += self._raw[start : start + size]
                self._raw = self._raw[start + size + 2 :]
        self.body += new
        return new

    def read_more(self, deadline: float) -> bytes:
        """Read one batch of body bytes; raise StreamClosed at the end."""
        while True:
            if self.ended:
                raise StreamClosed("the chunked body ended")
            data = self._recv(deadline)
            if not data:
                if not self.chunked:
                    self.ended = True
                else:
                    self.cut = True
                raise StreamClosed("the connection closed")
            self._raw += data
            new = self._dechunk()
            if new or self.ended:
                return new

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        """Read until ``marker`` is in the body; return the whole body."""
        deadline = deadline_after(timeout)
        while marker not in self.body:
            self.read_more(deadline)
        return self.body

    def read_to_end(self, timeout: float = 5.0) -> bytes:
        """Read until the server ends the response; return the whole body."""
        deadline = deadline_after(timeout)
        try:
            while True:
                self.read_more(deadline)
        except StreamClosed:
            return self.body

    def events(self, count: int, timeout: float = 5.0) -> list[Message]:
        """Read until ``count`` more messages were dispatched; return them."""
        deadline = deadline_after(timeout)
        messages: list[Message] = []
        pending = self.body[self._fed :] if hasattr(self, "_fed") else self.body
        self._fed = len(self.body)
        messages += self.decoder.feed(pending)
        while len(messages) < count:
            new = self.read_more(deadline)
            self._fed = len(self.body)
            messages += self.decoder.feed(new)
        return messages

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    """One plain GET with ``Connection: close``; returns (status, body)."""
    with RawStream(port, path, headers={"Connection": "close"}, timeout=timeout) as r:
        return r.status, r.read_to_end(timeout)


def wait_until(predicate: object, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until true or the bound; return the last value.

    The bound is at least PATIENCE: callers assert the result is true.
    """
    deadline = deadline_after(timeout)
    while True:
        value = predicate()  # type: ignore[operator]
        if value or time.monotonic() >= deadline:
            return bool(value)
        time.sleep(interval)


def stream_app(callback: Callable[[SSEWriter], object], **start: object) -> App:
    """An app whose /events streams ``callback``; / answers ``ok``."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse(**start)  # type: ignore[arg-type]
        event.set_stream_callback(callback)

    @app.route("/", methods=["GET", "POST"])
    def index(event: Event) -> str:
        return "ok"

    return app
