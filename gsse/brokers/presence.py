"""Presence: who is on a channel, and ``join``/``leave`` events (no Redis here).

A stream subscribed with ``presence={...}`` is a *member* of each of its
channels until it ends; ``presence=None`` (the default) makes it anonymous:
counted by ``broker.subscribers()``, absent from ``broker.presence()``, and
it causes no ``join``/``leave`` events. A stream subscribed with
``presence_events=True`` is a *watcher*: it first gets a ``join`` for every
member already there (itself included), then one per change.

Deliberate choices:

- The dict is encoded to JSON once, when the stream subscribes (so a value
  that cannot be encoded fails in the handler, not later), and is kept as
  that text; :meth:`gsse.Broker.presence` decodes fresh dicts on every call.
- A :class:`Watcher` remembers which members it was told about, so each
  change reaches it at most once however it is learnt (a snapshot, a live
  message, or both after a reconnect).
- ``join``/``leave`` carry no ``id:`` line: they are not in history, never
  replayed, and must not move the stream's ``Last-Event-ID``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..exceptions import ClientDisconnected
from ..transport import Transport
from ..wire import encode_event
from .fanout import Subscription
from .frames import Frame
from .frames import check_channel

#: The largest presence dict accepted, in bytes of compact JSON.
MAX_PRESENCE_SIZE = 4096


def encode_presence(presence: Any) -> str | None:
    """``presence`` as compact JSON text (``None`` stays ``None``), checked.

    :raises TypeError: not a dict or ``None``, or not JSON-serialisable.
    :raises ValueError: over :data:`MAX_PRESENCE_SIZE` bytes encoded.
    """
    if presence is None:
        return None
    if not isinstance(presence, dict):
        raise TypeError(
            "presence must be a dict (JSON-serialisable) or None for an anonymous"
            f" stream, not {type(presence).__name__}: {presence!r:.80}"
        )
    try:
        text = json.dumps(presence, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"presence must be JSON-serialisable: {exc}") from None
    if len(text.encode()) > MAX_PRESENCE_SIZE:
        raise ValueError(
            f"presence is {len(text.encode())} bytes as JSON, over"
            f" {MAX_PRESENCE_SIZE}: keep it to what a member list shows (a name,"
            " an id) and look the rest up by id"
        )
    return text


def check_presence_events(presence_events: Any, channels: tuple[str, ...]) -> bool:
    """``presence_events`` as a bool, for a stream of one channel only.

    :raises TypeError: not a bool.
    :raises ValueError: ``True`` for a stream of several channels (a ``join``
        could not say which channel it is about).
    """
    if not isinstance(presence_events, bool):
        raise TypeError(
            f"presence_events must be True or False, not {presence_events!r}"
        )
    if presence_events and len(channels) != 1:
        raise ValueError(
            "presence_events=True needs a stream of exactly one channel (a join"
            f" or leave event does not name its channel), got {len(channels)}:"
            " open one stream for the channel whose members you show"
        )
    return presence_events


def check_presence_ttl(presence_ttl: Any) -> float:
    """``presence_ttl`` as seconds (at least 1), else raise saying so."""
    if isinstance(presence_ttl, bool) or not isinstance(presence_ttl, (int, float)):
        raise TypeError(
            f"presence_ttl must be a number of seconds, got {presence_ttl!r}"
        )
    if not presence_ttl >= 1:
        raise ValueError(
            "presence_ttl must be at least 1 second (each process refreshes its"
            f" entries every presence_ttl / 3 seconds), got {presence_ttl!r}"
        )
    return float(presence_ttl)


def presence_event(kind: str, info: str) -> bytes:
    """The ``join`` or ``leave`` event for a member whose dict is ``info``."""
    return encode_event(info, event=kind)


class Watcher:
    """A stream subscribed with ``presence_events=True`` to one channel."""

    __slots__ = ("transport", "known")

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        #: Members this stream was told joined (and not left), with their dict.
        self.known: dict[str, str] = {}

    def tell(self, kind: str, member: str, info: str) -> None:
        """Send ``join`` or ``leave`` unless this stream already knows it."""
        known = self.known
        if kind == "join":
            if member in known:
                return
            known[member] = info
        else:
            stored = known.pop(member, None)
            if stored is None:
                return
            info = stored
        self.send(presence_event(kind, info))

    def sync(self, members: dict[str, str]) -> None:
        """Tell what changed between what this stream knows and ``members``."""
        for member in [m for m in self.known if m not in members]:
            self.tell("leave", member, "")
        for member, info in members.items():
            self.tell("join", member, info)

    def send(self, raw: bytes) -> None:
        transport = self.transport
        if transport.closed:
            return
        try:
            transport.write(raw)
        except ClientDisconnected:
            return
        if transport.full_since:
            transport.abort_if_overflowed()


def delivered(subscribers: Iterable[Subscription], frame: Frame) -> int:
    """How many of ``subscribers`` were just handed ``frame`` (after fan_out).

    A stream counts when its position in the channel is the frame's (it was
    written to its buffer) or when it is still replaying (the frame waits in
    its ``pending`` list and follows the replay).
    """
    count = 0
    key, channel = frame.key, frame.channel
    for subscription in subscribers:
        if subscription.transport.closed:
            continue
        if subscription.pending is not None:
            count += 1
        elif subscription.positions[subscription.index[channel]] == key:
            count += 1
    return count


class PresenceStore:
    """Members and watchers of channels, for one broker (see the backends)."""

    def join(
        self,
        transport: Transport,
        channels: tuple[str, ...],
        info: str | None,
        events: bool,
    ) -> None:
        """Count ``transport``'s stream on ``channels`` until it closes."""
        raise NotImplementedError

    def presence(self, channel: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def subscribers(self, channel: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Say goodbye (a backend that shares presence removes its entries)."""


class _Members:
    __slots__ = ("count", "named", "watchers")

    def __init__(self) -> None:
        self.count = 0
        self.named: dict[str, str] = {}
        self.watchers: set[Watcher] = set()


class MemoryPresence(PresenceStore):
    """Presence in one process: changes reach watchers as they happen.

    Joining and leaving run in the event loop (subscriptions live there),
    and cost O(1) plus one write per watcher of the channel.
    """

    def __init__(self) -> None:
        self._channels: dict[str, _Members] = {}

    def join(
        self,
        transport: Transport,
        channels: tuple[str, ...],
        info: str | None,
        events: bool,
    ) -> None:
        if transport.closed:
            return
        member = str(transport.stream_id)
        watcher = Watcher(transport) if events else None
        for name in channels:
            members = self._channels.get(name)
            if members is None:
                members = self._channels[name] = _Members()
            members.count += 1
            if info is not None:
                members.named[member] = info
                for other in tuple(members.watchers):
                    other.tell("join", member, info)
            if watcher is not None:
                members.watchers.add(watcher)
                watcher.sync(members.named)
        transport.on_close(lambda _: self._leave(member, channels, info, watcher))

    def _leave(
        self,
        member: str,
        channels: tuple[str, ...],
        info: str | None,
        watcher: Watcher | None,
    ) -> None:
        for name in channels:
            members = self._channels.get(name)
            if members is None:
                continue
            members.count -= 1
            if watcher is not None:
                members.watchers.discard(watcher)
            if info is not None and members.named.pop(member, None) is not None:
                for other in tuple(members.watchers):
                    other.tell("leave", member, info)
            if not members.count:
                del self._channels[name]

    def presence(self, channel: str) -> list[dict[str, Any]]:
        members = self._channels.get(channel)
        if members is None:
            return []
        return [json.loads(info) for info in tuple(members.named.values())]

    def subscribers(self, channel: str) -> int:
        members = self._channels.get(channel)
        return 0 if members is None else members.count


class ChannelPresence:
    """What :class:`gsse.Broker` offers about who is listening (a mixin).

    A backend that shares channels between processes overrides
    :meth:`_make_presence`; the default keeps presence in this process.
    """

    _presence_store: PresenceStore | None = None

    def _make_presence(self) -> PresenceStore:
        return MemoryPresence()

    def _members(self) -> PresenceStore:
        store = self._presence_store
        if store is None:
            store = self._presence_store = self._make_presence()
        return store

    def presence(self, channel: str) -> list[dict[str, Any]]:
        """The presence dicts of every live stream of ``channel``.

        Streams subscribed with ``presence={...}`` (anonymous ones are only
        counted, see :meth:`subscribers`), in every process sharing the
        broker; on Redis one round trip, and a process that died without
        saying goodbye drops out within ``presence_ttl`` seconds.

        :raises ValueError: a bad channel name.
        :raises gsse.BrokerUnavailable: Redis did not answer.

        .. versionadded:: 0.2
        """
        check_channel(channel)
        return self._members().presence(channel)

    def subscribers(self, channel: str) -> int:
        """How many live streams follow ``channel``, in every process.

        Anonymous streams included; cheaper than ``len(presence(channel))``
        (on Redis it reads one counter per process, not a list).

        :raises ValueError: a bad channel name.
        :raises gsse.BrokerUnavailable: Redis did not answer.

        .. versionadded:: 0.2
        """
        check_channel(channel)
        return self._members().subscribers(channel)
