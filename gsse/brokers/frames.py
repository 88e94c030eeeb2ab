"""Event ids, channel names and the encoded form of a published event (no I/O).

Deliberate choices:

- An event id is ``"<milliseconds>-<sequence>"`` in every backend, the shape
  of a Redis Stream entry id. Ids of one channel increase (compared as a pair
  of integers), and, being based on the wall clock, ids issued after a
  restart are larger than any issued before it, so an id from before a
  restart is never mistaken for a newer event.
- A stream of several channels needs a position in each, so its wire id is
  the ids of its channels, in the order they were given, joined by ``,``
  (``1700000000000-0,1700000000123-4``). A stream of one channel uses the
  event's own id.
- Each published event is encoded once: its ``event:`` line and its
  ``data:`` lines are built when it is published and shared by every
  subscriber; live one-channel streams even share the HTTP chunk framing,
  which is built per fan-out and not kept in history (history holds the
  event's bytes with and without its ``id:`` line).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from werkzeug.exceptions import BadRequest

from ..wire import encode_event

#: An event id as a comparable pair: (milliseconds, sequence).
Key = tuple[int, int]

_ID = re.compile(r"([0-9]{1,18})-([0-9]{1,18})")

#: The longest channel name accepted.
MAX_CHANNEL_LENGTH = 200


def parse_id(text: str) -> Key | None:
    """``"ms-seq"`` as a pair of ints, or ``None`` when it is not an event id."""
    match = _ID.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def format_id(key: Key) -> str:
    return f"{key[0]}-{key[1]}"


def check_channel(channel: Any) -> str:
    """Return ``channel`` if it is a usable channel name, else raise.

    Names are printable text: a control character (CR, LF, NUL, ...) could
    never be part of a header or a field, and is refused at the boundary.

    :raises TypeError: not a ``str``.
    :raises ValueError: empty, too long, or with a control character.
    """
    return check_name(channel, "a channel name", MAX_CHANNEL_LENGTH)


def check_name(value: Any, what: str, max_length: int) -> str:
    """``value`` if it is printable text of 1 to ``max_length`` characters.

    :param what: how errors name it (``"a channel name"``).
    :raises TypeError: not a ``str``.
    :raises ValueError: empty, too long, or with a control character.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}: {value!r}")
    if not value or len(value) > max_length:
        raise ValueError(
            f"{what} must be 1 to {max_length} characters,"
            f" got {len(value)}: {value[:50]!r}"
        )
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(
                f"{what} must not contain control characters or lone"
                f" surrogates (found {char!r}): {value!r}"
            )
    return value


class ChannelRefused(BadRequest):
    """A stream asked for channels it cannot have: the client's ``400``.

    Channel names usually come from the request (a path or a query), so a bad
    one is the client's mistake: frameworks answer an ``HTTPException`` with
    its status, without a traceback or an ERROR log line. The subclasses are
    also the ``ValueError`` or ``TypeError`` code already expects.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.description)


class InvalidChannel(ChannelRefused, ValueError):
    """An empty, too long or unprintable name, a repeat, or too many channels."""


class MissingChannel(ChannelRefused, TypeError):
    """No channel at all, or ``None`` (a parameter missing from the request)."""


def check_channels(
    channels: tuple[str, ...], max_channels: int | None = None
) -> tuple[str, ...]:
    """Validate the channels of one stream: at least one, no repeats.

    :raises MissingChannel: no channel, or ``None`` for one.
    :raises InvalidChannel: a bad name, a repeat, or more than ``max_channels``.
    :raises TypeError: a name that is neither ``str`` nor ``None`` (a bug).
    """
    if not channels:
        raise MissingChannel("name at least one channel to subscribe to")
    if max_channels is not None and len(channels) > max_channels:
        raise InvalidChannel(
            f"a stream may follow at most {max_channels} channels"
            f" (max_channels), got {len(channels)}"
        )
    for channel in channels:
        if channel is None:
            raise MissingChannel(
                f"a channel name is missing (None) in {channels[:10]!r}"
            )
        try:
            check_channel(channel)
        except ValueError as exc:
            raise InvalidChannel(str(exc)) from None
    if len(set(channels)) != len(channels):
        raise InvalidChannel(f"a channel is named twice: {channels[:20]!r}")
    return channels


def encode_body(data: Any, event: str | None) -> bytes:
    """The ``event:`` and ``data:`` lines of a published event, checked.

    :raises ValueError: ``data`` is ``None``, or ``event`` has CR or LF.
    :raises TypeError: ``data`` cannot be encoded.
    """
    if data is None:
        raise ValueError(
            "publish() needs data: a str, bytes or a JSON-serialisable value"
            " (an event without data is not dispatched by browsers)"
        )
    if event is not None and event == "":
        raise ValueError("event must be a non-empty name or None (for 'message')")
    return encode_event(data, event=event)


class Frame:
    """One published event, encoded once for every subscriber.

    :param raw: the event's ``event:`` and ``data:`` lines, as stored.
    :param ckey: the compaction key ``publish(..., key=)`` gave (``None``:
        unkeyed): a newer event with the same key supersedes this one.
    """

    __slots__ = ("channel", "id", "key", "split", "raw", "_single", "ckey")

    def __init__(
        self, channel: str, key: Key, raw: bytes, ckey: str | None = None
    ) -> None:
        self.channel = channel
        self.key = key
        self.ckey = ckey
        self.id = format_id(key)
        self.raw = raw
        # The ``id:`` line goes after the ``event:`` line (gsse's field order).
        self.split = raw.index(b"\n") + 1 if raw.startswith(b"event: ") else 0
        self._single: bytes | None = None

    def with_id(self, wire_id: str) -> bytes:
        """The event's bytes carrying ``wire_id`` (a multi-channel position)."""
        raw, split = self.raw, self.split
        return b"%sid: %s\n%s" % (raw[:split], wire_id.encode(), raw[split:])

    @property
    def single(self) -> bytes:
        """The event's bytes with its own id (one-channel streams), built once."""
        single = self._single
        if single is None:
            single = self._single = self.with_id(self.id)
        return single


#: Characters of the client's ``Last-Event-ID`` a ``reset`` echoes: a
#: stream of many channels gets one ``reset`` per channel, so echoing a
#: header of the server's maximum size whole would turn one request into a
#: hundred times its size in queued output (a real id is about 20 characters
#: per channel).
MAX_ECHOED_ID = 256


def reset_event(channel: str, last_event_id: str | None, wire_id: str | None) -> bytes:
    """The documented ``reset`` event: the client's position was not in history."""
    if last_event_id is not None and len(last_event_id) > MAX_ECHOED_ID:
        last_event_id = last_event_id[:MAX_ECHOED_ID] + "..."
    data = json.dumps(
        {"channel": channel, "last_event_id": last_event_id},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return encode_event(data, event="reset", id=wire_id)
