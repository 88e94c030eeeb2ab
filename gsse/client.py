"""``EventSource``: a spec-exact Server-Sent Events client on ``requests``.

Parsing is :class:`gsse.wire.EventStreamDecoder`, the same code the server's
tests read their own output with, so what gsse writes and what this client
reads agree byte for byte, and both agree with a browser.

Deliberate choices (the HTML spec leaves the timing to the user agent):

- The reconnection time starts at :data:`DEFAULT_RETRY_MS` (3000 ms, as in
  Chromium and Firefox) and follows each valid ``retry:`` field.
- Each wait before reconnecting gets up to +10% random jitter (never less
  than the server asked for), so clients dropped together do not come back
  together.
- Attempts that deliver no event in a row double the wait (reconnection
  time x 2, x 4, ...), capped at :data:`MAX_BACKOFF_MS` (30 s, or the
  reconnection time itself when the server asked for more). A connection
  that delivers an event resets the doubling.
- ``max_retries`` counts those failed attempts in a row; past it the
  iterator raises :class:`EventSourceError`. ``None`` retries for ever.
- A status other than 200, or a ``Content-Type`` other than
  ``text/event-stream``, fails the source for good (the spec's "fail the
  connection") with :class:`EventSourceError`; HTTP 204 ends it quietly.
- Body bytes are read with ``read1``: a message is delivered as soon as its
  blank line arrives, never held back to fill a buffer.
- :meth:`EventSource.close` shuts the socket down, which wakes a read
  blocked in another thread or greenlet; the iterator then just ends.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import requests
import urllib3

from .headers import check_header
from .wire import EventStreamDecoder
from .wire import Message

__all__ = [
    "DEFAULT_RETRY_MS",
    "DEFAULT_TIMEOUT",
    "MAX_BACKOFF_MS",
    "EventSource",
    "EventSourceError",
    "Message",
    "parse",
]

logger = logging.getLogger("gsse.client")

#: The reconnection time until the server sends ``retry:``, in ms.
DEFAULT_RETRY_MS = 3000
#: The cap on the doubled wait after failed attempts, in ms.
MAX_BACKOFF_MS = 30_000
#: Share of the wait added at random (0.1: up to +10%).
JITTER = 0.1
#: ``(connect, read)`` seconds. gsse pings idle streams every 15 s, so a
#: minute of silence means the connection is gone: reconnect.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: The most bytes one read asks for; it returns whatever has arrived.
READ_SIZE = 65536

#: What a dropped or refused connection raises, through requests or not.
NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

Timeout = float | tuple[float | None, float | None] | None


class EventSourceError(Exception):
    """The stream cannot go on: a bad response, or retries ran out.

    :param status: the HTTP status of a bad response; ``None`` when the
        connection itself failed.
    :param content_type: the response's ``Content-Type``, when there was one.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.content_type = content_type


def parse(chunks: Iterable[bytes], last_event_id: str = "") -> Iterator[Message]:
    """Messages from the body of one connection, however its bytes are split.

    An event left unterminated when ``chunks`` ends is dropped, as the spec
    says. ``last_event_id`` is the ID the messages start from.

    .. versionadded:: 0.1
    """
    decoder = EventStreamDecoder(last_event_id)
    for chunk in chunks:
        yield from decoder.feed(chunk)


def _is_event_stream(content_type: str) -> bool:
    """``text/event-stream``, any case, parameters allowed (MIME essence)."""
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


class EventSource:
    """Read a ``text/event-stream`` URL as an iterator of :class:`Message`.

    :param url: the stream's URL.
    :param last_event_id: resume after this ID (sent as ``Last-Event-ID``).
    :param headers: more request headers, e.g. ``Authorization``; names
        must be HTTP tokens and values free of control characters but tab
        (``ValueError`` otherwise).
    :param session: a ``requests.Session`` to use (cookies, auth, proxies,
        adapters); by default the source makes and closes its own.
    :param timeout: ``requests``' timeout: seconds, or ``(connect, read)``.
        A read timeout counts as a dropped connection.
    :param reconnect: reconnect when the connection ends or fails; with
        ``False`` the iterator ends with the first connection (one that
        cannot be made, or breaks off mid-response, raises).
    :param max_retries: failed attempts in a row allowed before giving up
        with :class:`EventSourceError`; ``None`` for no limit.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        url: str,
        *,
        last_event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        reconnect: bool = True,
        max_retries: int | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.lower().startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if last_event_id is not None and not isinstance(last_event_id, str):
            raise TypeError(
                "last_event_id must be a str or None, not"
                f" {type(last_event_id).__name__}"
            )
        if last_event_id and any(char in last_event_id for char in "\0\r\n"):
            raise ValueError(
                f"last_event_id must not contain NUL, CR or LF: {last_event_id!r}"
            )
        if max_retries is not None and not (
            type(max_retries) is int and max_retries >= 0
        ):
            raise ValueError(
                f"max_retries must be an int >= 0 or None, got {max_retries!r}"
            )
        self.url = url
        #: The spec's last event ID string: sent on every reconnection.
        self.last_event_id = last_event_id or ""
        #: The reconnection time in ms (``retry:`` from the server changes it).
        self.retry = DEFAULT_RETRY_MS
        # Checked here, so a bad one fails now, not on a later reconnection.
        self.headers = dict(check_header(k, v) for k, v in (headers or {}).items())
        self.timeout = timeout
        self.reconnect = reconnect
        self.max_retries = max_retries
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._messages: Iterator[Message] | None = None

    # -- public ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the stream ended for good."""
        return self._closed.is_set()

    def close(self) -> None:
        """Stop reading; safe from any thread or greenlet, and more than once.

        A read blocked in another thread or greenlet returns, and its
        iterator ends without an error.
        """
        self._closed.set()
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            _shut_down(response)
        if self._own_session:
            self.session.close()

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        if self._messages is None:
            self._messages = self._run()
        return next(self._messages)

    def __enter__(self) -> EventSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<EventSource {self.url} {state} last_event_id={self.last_event_id!r}>"

    # -- the loop ------------------------------------------------------------
    def _run(self) -> Iterator[Message]:
        failures = 0
        try:
            while not self.closed:
                delivered = False
                error: Exception | None = None
                try:
                    for message in self._connect_once():
                        delivered = True
                        yield message
                except EventSourceError:
                    raise
                except requests.exceptions.InvalidHeader as exc:  # never sendable
                    why = f"cannot send the request to {self.url}: {exc}"
                    raise EventSourceError(why, url=self.url) from exc
                except Exception as exc:
                    if self.closed:
                        return  # close() cut the read short: not an error
                    if not isinstance(exc, NETWORK_ERRORS):
                        raise
                    error = exc
                if self.closed:
                    return
                if not self.reconnect:
                    if error is not None:
                        raise EventSourceError(
                            f"connection to {self.url} failed: {error}", url=self.url
                        ) from error
                    return
                failures = 0 if delivered else failures + 1
                if self.max_retries is not None and failures > self.max_retries:
                    raise EventSourceError(
                        f"gave up on {self.url} after {self.max_retries} failed"
                        f" reconnection attempts in a row"
                        + (f"; last error: {error}" if error else ""),
                        url=self.url,
                    ) from error
                delay = self.reconnect_delay(failures)
                logger.info(
                    "%s: %s; reconnecting in %.1f s",
                    self.url,
                    error or "the server ended the stream",
                    delay,
                )
                if self._closed.wait(delay):
                    return
        finally:
            self._closed.set()
            if self._own_session:
                self.session.close()

    def reconnect_delay(self, failures: int) -> float:
        """Seconds to wait before the next attempt after ``failures`` in a row."""
        delay = float(self.retry)
        if failures > 1:
            cap = max(float(MAX_BACKOFF_MS), float(self.retry))
            delay = min(delay * 2 ** min(failures - 1, 32), cap)
        return delay * (1 + random.uniform(0, JITTER)) / 1000

    def _connect_once(self) -> Iterator[Message]:
        headers: dict[str, str | bytes] = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            **self.headers,
        }
        # Servers trim whitespace around a field value (RFC 9110 5.5) and
        # requests refuses it; UTF-8 as browsers send it (not latin-1).
        last_event_id = self.last_event_id.strip(" \t")
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id.encode("utf-8")
        response = self.session.get(
            self.url, headers=headers, stream=True, timeout=self.timeout
        )
        with self._lock:
            if self.closed:
                response.close()
                return
            self._response = response
        try:
            self._check(response)
            if response.status_code == 204:
                self._closed.set()
                return
            decoder = EventStreamDecoder(self.last_event_id)
            raw = response.raw
            while True:
                data = raw.read1(READ_SIZE)
                if not data:
                    return
                for message in decoder.feed(data):
                    self.last_event_id = decoder.last_event_id
                    if decoder.retry is not None:
                        self.retry = decoder.retry
                    yield message
                # An id- or retry-only block changes state without a message.
                self.last_event_id = decoder.last_event_id
                if decoder.retry is not None:
                    self.retry = decoder.retry
        finally:
            with self._lock:
                if self._response is response:
                    self._response = None
            response.close()

    def _check(self, response: requests.Response) -> None:
        status = response.status_code
        if status == 204:
            return
        content_type = response.headers.get("Content-Type", "")
        if status != 200:
            self._closed.set()
            raise EventSourceError(
                f"{self.url} answered HTTP {status} {response.reason or ''}".rstrip()
                + " (an event stream must answer 200; not reconnecting)",
                url=self.url,
                status=status,
                content_type=content_type or None,
            )
        if not _is_event_stream(content_type):
            self._closed.set()
            raise EventSourceError(
                f"{self.url} answered Content-Type {content_type or '(none)'!r},"
                " not text/event-stream; not reconnecting",
                url=self.url,
                status=status,
                content_type=content_type or None,
            )


def _shut_down(response: requests.Response) -> None:
    """Close ``response`` so that a read blocked on it returns at once.

    Closing a socket does not wake a ``recv`` blocked in another OS thread;
    ``shutdown`` does, so the socket is shut down first when it can be found.
    """
    sock = _socket_of(response)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        response.close()
    except Exception:  # a half-read body may complain; it is closed all the same
        logger.debug("closing the response raised", exc_info=True)


def _socket_of(response: requests.Response) -> Any:
    """The socket under ``response``, or ``None``.

    urllib3 keeps it on the connection, unless the server said
    ``Connection: close``: http.client then lets go of it there, and only the
    body's file (``HTTPResponse.fp`` -> ``SocketIO._sock``) still has it.
    """
    raw = response.raw
    connection = getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        body = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(body, "raw", None), "_sock", None)
    return sock
