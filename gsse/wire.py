"""The ``text/event-stream`` format, both ways, with no I/O.

Encoding validates everything *before* building any bytes, so a call that
raises has written nothing, and the bytes it returns are always whole events:
no user value can add a line, a field or an event.

Decoding follows the HTML spec's parsing algorithm to the letter
(https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream)
so that what the server writes and what a browser reads agree exactly.

Deliberate choices:

- Line breaks inside ``data`` and comments are exactly CR, LF and CRLF (the
  spec's), never :meth:`str.splitlines`, which also breaks on ``\\x0b``,
  ``\\x1c``, ``\\u2028`` and friends and would change the data.
- Field order on the wire is ``event``, ``id``, ``retry``, then ``data``.
- An empty line of data is written ``data:`` (no trailing space).
- Non-text data is compact JSON (``separators=(",", ":")``,
  ``ensure_ascii=False``): smaller on the wire, still valid UTF-8.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Message",
    "EventStreamDecoder",
    "encode_event",
    "encode_comment",
    "encode_retry",
    "PING",
]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: The keep-alive comment idle streams receive.
PING = b": ping\n\n"


def _text_of(data: Any) -> str:
    """Turn ``send_event``'s ``data`` into the text that goes on the wire."""
    if isinstance(data, str):
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"data bytes are not valid UTF-8 ({exc.reason} at byte {exc.start});"
                " pass str, or bytes that decode as UTF-8"
            ) from None
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"data of type {type(data).__name__} cannot be sent: pass str, bytes,"
            f" or a JSON-serialisable value ({exc})"
        ) from None


def _check_line(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}: {value!r}")
    if "\n" in value or "\r" in value:
        raise ValueError(
            f"{name} must not contain CR or LF (it would start a new field): {value!r}"
        )
    return value


def _check_retry(retry: Any) -> int:
    if isinstance(retry, bool) or not isinstance(retry, int):
        raise TypeError(
            f"retry must be an int number of milliseconds, not"
            f" {type(retry).__name__}: {retry!r}"
        )
    if retry < 0:
        raise ValueError(f"retry must be >= 0 milliseconds, got {retry!r}")
    return retry


def _lines(prefix: str, text: str) -> str:
    """One ``prefix: line`` per line of ``text``, split on CR, LF and CRLF."""
    if "\n" not in text and "\r" not in text:
        return f"{prefix}: {text}\n" if text else f"{prefix}:\n"
    return "".join(
        f"{prefix}: {line}\n" if line else f"{prefix}:\n"
        for line in _LINE_BREAK.split(text)
    )


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} contains {text[exc.start : exc.end]!r}, which is not valid"
            " Unicode text (a lone surrogate?); it cannot be sent as UTF-8"
        ) from None


def encode_event(
    data: Any = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as the bytes of a whole ``text/event-stream`` block.

    :param data: ``str`` (split into one ``data:`` line per line), ``bytes``
        (decoded as UTF-8), any other value as compact JSON, or ``None`` for
        no ``data:`` line at all (an ``id``/``retry``-only frame).
    :param event: the event type; must not contain CR or LF.
    :param id: the event id; must not contain CR, LF or NUL.
    :param retry: the reconnection time in milliseconds, an ``int`` >= 0.
    :raises ValueError: a field would break the framing.
    :raises TypeError: a field has the wrong type.

    .. versionadded:: 0.1
    """
    head = ""
    if event is not None:
        head = f"event: {_check_line('event', event)}\n"
    if id is not None:
        _check_line("id", id)
        if "\0" in id:
            raise ValueError(f"id must not contain NUL (browsers ignore it): {id!r}")
        head += f"id: {id}\n"
    if retry is not None:
        head += f"retry: {_check_retry(retry)}\n"
    if data is None:
        if not head:
            raise ValueError(
                "send_event() needs something to send: data, or an id or retry"
            )
        return _utf8(head + "\n", "event or id")
    return _utf8(head + _lines("data", _text_of(data)) + "\n", "data")


def encode_comment(text: str = "") -> bytes:
    """Encode a comment (``: text``), which clients read and never show.

    .. versionadded:: 0.1
    """
    if not isinstance(text, str):
        raise TypeError(f"comment text must be a str, not {type(text).__name__}")
    return _utf8(_lines("", text) + "\n", "comment")


def encode_retry(retry: int) -> bytes:
    """Encode a ``retry:``-only frame (sets the client's reconnection time)."""
    return f"retry: {_check_retry(retry)}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Message:
    """One dispatched event, as a browser's ``MessageEvent`` would carry it.

    :param data: the data, lines joined with LF.
    :param event: the event type; ``"message"`` when the event had none.
    :param id: the last event ID as the spec keeps it: it persists across
        events until an ``id:`` field changes it (``""`` when never set).
    :param retry: the ``retry:`` value given in this event's block, or ``None``.

    .. versionadded:: 0.1
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class EventStreamDecoder:
    """Incremental, spec-exact parser: feed it bytes, get whole messages back.

    Network chunks may split anything (a UTF-8 sequence, a CRLF, the BOM); the
    decoder carries what it needs from one :meth:`feed` to the next. An event
    left unterminated when the stream ends is never returned, as the spec says.

    :param last_event_id: the last event ID to start from (it survives
        reconnections, so a client passes it on to the next decoder).

    .. versionadded:: 0.1
    """

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        #: The reconnection time in ms from the last valid ``retry:`` field.
        self.retry: int | None = None
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True
        self._skip_lf = False
        self._tail = ""
        self._data: list[str] = []
        self._event = ""
        self._id_buffer = last_event_id
        self._block_retry: int | None = None

    def feed(self, raw: bytes) -> list[Message]:
        """Parse more bytes; return the messages they complete, in order."""
        text = self._utf8.decode(raw)
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if self._tail:
            text = self._tail + text
        lines = _LINE_BREAK.split(text)
        self._tail = lines.pop()
        if text.endswith("\r"):
            # The CR ended a line; an LF arriving next belongs to it.
            self._skip_lf = True
        messages: list[Message] = []
        for line in lines:
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _line(self, line: str) -> Message | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = self._block_retry = int(value)
        return None

    def _dispatch(self) -> Message | None:
        self.last_event_id = self._id_buffer
        data, event, retry = self._data, self._event, self._block_retry
        self._data, self._event, self._block_retry = [], "", None
        if not data:
            return None
        return Message("\n".join(data), event or "message", self.last_event_id, retry)
