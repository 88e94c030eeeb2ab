"""``memory://``: channels and history inside one process.

Publishing and subscribing run in the event loop's thread and never yield
while they touch a channel, so a subscriber's replay and its first live
event cannot interleave: registering and reading history are one step.
A publish from a thread-pool thread is handed to the loop (see
:mod:`gsse.bridge`).

Deliberate choices:

- History is exact per channel (its last ``history`` events) and bounded in
  total: past ``max_history_events`` events or ``max_history_bytes`` bytes
  across all channels, the channel published to least recently loses its
  oldest events first, so a busy channel keeps its history while forgotten
  ones shrink. A channel not published to for ``history_idle_ttl`` seconds
  loses its history (checked at each publish and subscribe: memory only
  grows by publishing). Lost history is never silent: resuming into it gets
  the ``reset`` event.
- A channel with neither subscribers nor history is forgotten entirely, so
  any number of distinct channel names costs nothing once they are idle.
- Ids are unique across the channels of a broker (one counter), and a
  ``Last-Event-ID`` resumes only from an id the channel itself issued: an id
  taken from another channel gets ``reset``.
- Compacted channels and ``history_ttl`` (see compaction.py): a channel's
  newest event per key lives in ``_Channel.keyed`` (in publish order) and
  counts towards the totals; events older than ``history_ttl`` are dropped
  when the channel is next published to or subscribed to.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections import deque
from typing import Any

from ..bridge import call_in_loop
from ..writer import SSEWriter
from .base import Broker
from .base import check_count
from .base import loop_of
from .base import stream_of
from .base import thread_ident
from .compaction import check_key
from .compaction import live_frames
from .compaction import ttl_cutoff
from .fanout import ChannelState
from .fanout import Subscription
from .fanout import fan_out
from .fanout import requested_positions
from .frames import Frame
from .frames import Key
from .presence import delivered

#: Defaults of the totals across channels, and of the idle time.
DEFAULT_MAX_HISTORY_EVENTS = 100_000
DEFAULT_MAX_HISTORY_BYTES = 64 * 1024 * 1024
DEFAULT_HISTORY_IDLE_TTL = 3600.0

#: What an event kept in history costs beyond its encoded bytes (the
#: Frame, its key and id, the deque slot), counted in ``max_history_bytes``.
FRAME_OVERHEAD = 250
#: What a channel with history costs beyond its name and events (its deque,
#: subscriber set, dict entries), counted in ``max_history_bytes`` too; both
#: measured with tracemalloc on CPython 3.11.
CHANNEL_OVERHEAD = 1300

_monotonic = time.monotonic


def _now_ms() -> int:
    return int(time.time() * 1000)


def _size(frame: Frame) -> int:
    return len(frame.raw) + FRAME_OVERHEAD


class _Channel:
    __slots__ = (
        "name",
        "history",
        "floor",
        "last",
        "subscribers",
        "published",
        "keyed",
    )

    def __init__(self, name: str, floor: Key) -> None:
        self.name = name
        self.history: deque[Frame] = deque()
        #: An id this channel issued (or its creation position, unique in the
        #: broker); every event after it is still in ``history``.
        self.floor = floor
        self.last: Key = floor
        self.subscribers: set[Subscription] = set()
        #: When it was last published to (monotonic seconds).
        self.published = 0.0
        #: The newest event of each key, oldest first (compacted channels).
        self.keyed: OrderedDict[str, Frame] = OrderedDict()

    def state(self, after: Key | None, snapshot: bool = False) -> ChannelState:
        """The channel's newest id and what came after ``after`` (if resumable).

        ``after`` must be a position this channel issued: its floor, its
        newest id, or an event still in history. Anything else (an id of
        another channel, or one trimmed away) is not resumable.
        """
        keyed = self.keyed
        everything = list(keyed.values()) if snapshot else None
        if after is None or not self.floor <= after <= self.last:
            return ChannelState(self.last, None, everything)
        if after == self.last:
            return ChannelState(self.last, [], everything)
        known = after == self.floor
        frames = []
        for frame in self.history:
            if frame.key > after:
                frames.append(frame)
            elif frame.key == after:
                known = True
        if keyed:
            frames = live_frames(frames, keyed)
        return ChannelState(self.last, frames if known else None, everything)


class MemoryBroker(Broker):
    """A broker for one process; see :class:`gsse.Broker`.

    :param history: events each channel keeps.
    :param max_history_events: events kept across all channels.
    :param max_history_bytes: bytes of history across all channels: each
        event counts its encoded size plus ``FRAME_OVERHEAD``, each channel
        with history ``CHANNEL_OVERHEAD`` plus its name, close to the memory
        they take.
    :param history_idle_ttl: seconds after its last publish that a channel's
        history is dropped (``0``: kept until trimmed).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        history: int = 1000,
        max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS,
        max_history_bytes: int = DEFAULT_MAX_HISTORY_BYTES,
        history_idle_ttl: float = DEFAULT_HISTORY_IDLE_TTL,
        **limits: int,
    ) -> None:
        super().__init__(history=history, **limits)
        self.max_history_events = check_count("max_history_events", max_history_events)
        self.max_history_bytes = check_count("max_history_bytes", max_history_bytes)
        if isinstance(history_idle_ttl, bool) or not isinstance(
            history_idle_ttl, (int, float)
        ):
            raise TypeError(
                "history_idle_ttl must be a number of seconds,"
                f" got {history_idle_ttl!r}"
            )
        if not history_idle_ttl >= 0:
            raise ValueError(
                f"history_idle_ttl must be 0 (off) or more seconds,"
                f" got {history_idle_ttl!r}"
            )
        self.history_idle_ttl = float(history_idle_ttl)
        self._channels: dict[str, _Channel] = {}
        #: Channels with history, the least recently published first.
        self._recent: OrderedDict[str, _Channel] = OrderedDict()
        self._events = 0
        self._bytes = 0
        self._last_key: Key = (0, 0)
        self._hub: Any = None
        self._loop_thread: int | None = None

    def __repr__(self) -> str:
        return f"<MemoryBroker memory:// channels={len(self._channels)}>"

    def stats(self) -> dict[str, int]:
        """What the broker holds now: to watch its memory stay bounded.

        ``channels`` (with history or subscribers), ``channels_with_history``,
        ``events`` and ``bytes`` (history across channels, as
        ``max_history_bytes`` counts them).
        """
        return {
            "channels": len(self._channels),
            "channels_with_history": len(self._recent),
            "events": self._events,
            "bytes": self._bytes,
        }

    def live_subscribers(self, channel: str) -> int:
        state = self._channels.get(channel)
        if state is None:
            return 0
        return sum(1 for s in state.subscribers if s.pending is None)

    def _next_key(self) -> Key:
        """A new id, larger than every id this broker issued, in any channel."""
        now, last = _now_ms(), self._last_key
        key = (now, 0) if now > last[0] else (last[0], last[1] + 1)
        self._last_key = key
        return key

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name, self._next_key())
        return channel

    def publish(
        self,
        channel: str,
        data: Any,
        *,
        event: str | None = None,
        key: str | None = None,
        return_delivery: bool = False,
    ) -> Any:
        raw = self._encode(channel, data, event)
        ckey = check_key(key)
        if self._hub is not None and thread_ident() != self._loop_thread:
            return call_in_loop(
                self._hub, self._publish, channel, raw, ckey, return_delivery
            )
        return self._publish(channel, raw, ckey, return_delivery)

    def _publish(
        self, name: str, raw: bytes, ckey: str | None, return_delivery: bool
    ) -> Any:
        now = _monotonic()
        self._expire(now)
        self._expire_old(name)
        channel = self._channel(name)
        key = self._next_key()
        frame = Frame(name, key, raw, ckey)
        history = channel.history
        history.append(frame)
        channel.last = key
        channel.published = now
        self._events += 1
        self._bytes += _size(frame)
        if ckey is not None:
            self._keep_newest(channel, frame, ckey)
        if name in self._recent:
            self._recent.move_to_end(name)
        else:
            self._recent[name] = channel
            self._bytes += CHANNEL_OVERHEAD + len(name)
        handed = 0
        if channel.subscribers:
            fan_out(channel.subscribers, frame)
            if return_delivery:
                handed = delivered(channel.subscribers, frame)
            # Kept once, without the copy carrying its id (rebuilt on replay).
            frame._single = None
        if len(history) > self.history_of.get(name, self.history):
            self._trim(channel)
        while (
            self._events > self.max_history_events
            or self._bytes > self.max_history_bytes
        ):
            oldest = next(iter(self._recent.values()))
            if oldest.history:
                self._trim(oldest)
            else:
                self._drop_oldest_key(oldest)
        return (frame.id, handed) if return_delivery else frame.id

    def _trim(self, channel: _Channel) -> None:
        """Drop ``channel``'s oldest event; resuming from it stays possible."""
        frame = channel.history.popleft()
        channel.floor = frame.key
        self._events -= 1
        self._bytes -= _size(frame)
        if not channel.history and not channel.keyed:
            self._emptied(channel)

    def _keep_newest(self, channel: _Channel, frame: Frame, ckey: str) -> None:
        """``frame`` is its key's newest event (counted apart from history)."""
        keyed = channel.keyed
        old = keyed.pop(ckey, None)
        if old is not None:
            self._events -= 1
            self._bytes -= _size(old)
        keyed[ckey] = frame
        self._events += 1
        self._bytes += _size(frame)

    def _drop_oldest_key(self, channel: _Channel) -> None:
        _, frame = channel.keyed.popitem(last=False)
        self._events -= 1
        self._bytes -= _size(frame)
        if not channel.history and not channel.keyed:
            self._emptied(channel)

    def _expire_old(self, name: str) -> None:
        """Drop the channel's events older than ``history_ttl`` (floor moves).

        This may forget the channel: look it up again afterwards.
        """
        cutoff = ttl_cutoff(self.history_ttl)
        if cutoff is None:
            return
        channel = self._recent.get(name)
        if channel is None:
            return
        history, keyed = channel.history, channel.keyed
        while history and history[0].key < cutoff:
            self._trim(channel)
        while keyed and next(iter(keyed.values())).key < cutoff:
            self._drop_oldest_key(channel)

    def _expire(self, now: float) -> None:
        """Drop the history of channels idle for ``history_idle_ttl`` seconds.

        Or for ``history_ttl``, if shorter: all their events are that old.
        """
        idle = [t for t in (self.history_idle_ttl, self.history_ttl) if t]
        if not idle:
            return
        deadline = now - min(idle)
        recent = self._recent
        while recent:
            channel = next(iter(recent.values()))
            if channel.published > deadline:
                return
            history, keyed = channel.history, channel.keyed
            self._events -= len(history) + len(keyed)
            self._bytes -= sum(_size(frame) for frame in history)
            self._bytes -= sum(_size(frame) for frame in keyed.values())
            history.clear()
            keyed.clear()
            channel.floor = channel.last
            self._emptied(channel)

    def _emptied(self, channel: _Channel) -> None:
        del self._recent[channel.name]
        self._bytes -= CHANNEL_OVERHEAD + len(channel.name)
        if not channel.subscribers:
            self._channels.pop(channel.name, None)

    def _subscribe(
        self, writer: SSEWriter, channels: tuple[str, ...], *, snapshot: bool = False
    ) -> None:
        if self._hub is None:
            self._hub, self._loop_thread = loop_of(writer)
        self._expire(_monotonic())
        stream = stream_of(writer)
        subscription = Subscription(stream, channels, snapshot=snapshot)
        last_event_id = writer.last_event_id
        requested = requested_positions(last_event_id, len(channels))
        states = []
        for i, name in enumerate(channels):
            self._expire_old(name)
            channel = self._channel(name)
            after = requested[i] if requested else None
            states.append(channel.state(after, snapshot))
            channel.subscribers.add(subscription)
        stream.on_close(lambda _: self._unsubscribe(subscription))
        subscription.start(last_event_id, requested, states)
        for state in states:
            for frame in (state.frames or []) + (state.snapshot or []):
                frame._single = None  # history keeps one copy (see _publish)

    def _unsubscribe(self, subscription: Subscription) -> None:
        for name in subscription.channels:
            channel = self._channels.get(name)
            if channel is None:
                continue
            channel.subscribers.discard(subscription)
            if not (channel.subscribers or channel.history or channel.keyed):
                del self._channels[name]
