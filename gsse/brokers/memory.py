"""``memory://``: channels and history inside one process.

Publishing and subscribing run in the event loop's thread and never yield
while they touch a channel, so a subscriber's replay and its first live
event cannot interleave: registering and reading history are one step.
A publish from a thread-pool thread is handed to the loop (see
:mod:`gsse.bridge`).

History is exact: each channel keeps its last ``history`` events. A channel
with neither subscribers nor history is forgotten.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..bridge import call_in_loop
from ..writer import SSEWriter
from .base import Broker
from .base import loop_of
from .base import thread_ident
from .base import transport_of
from .fanout import ChannelState
from .fanout import Subscription
from .fanout import fan_out
from .fanout import requested_positions
from .frames import Frame
from .frames import Key
from .frames import check_channel
from .frames import encode_body


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Channel:
    __slots__ = ("history", "floor", "last", "subscribers")

    def __init__(self, history: int) -> None:
        self.history: deque[Frame] = deque(maxlen=history)
        #: Every event after this id is still in ``history``.
        self.floor: Key = (_now_ms(), 0)
        self.last: Key = self.floor
        self.subscribers: set[Subscription] = set()

    def state(self, after: Key | None) -> ChannelState:
        if after is None or not self.floor <= after <= self.last:
            return ChannelState(self.last, None)
        return ChannelState(self.last, [f for f in self.history if f.key > after])


class MemoryBroker(Broker):
    """A broker for one process; see :class:`gsse.Broker`.

    .. versionadded:: 0.1
    """

    def __init__(self, *, history: int = 1000) -> None:
        super().__init__(history=history)
        self._channels: dict[str, _Channel] = {}
        self._hub: Any = None
        self._loop_thread: int | None = None

    def __repr__(self) -> str:
        return f"<MemoryBroker memory:// channels={len(self._channels)}>"

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self.history)
        return channel

    def publish(self, channel: str, data: Any, *, event: str | None = None) -> str:
        check_channel(channel)
        raw = encode_body(data, event)
        if self._hub is not None and thread_ident() != self._loop_thread:
            return call_in_loop(self._hub, self._publish, channel, raw)
        return self._publish(channel, raw)

    def _publish(self, name: str, raw: bytes) -> str:
        channel = self._channel(name)
        now, last = _now_ms(), channel.last
        key = (now, 0) if now > last[0] else (last[0], last[1] + 1)
        frame = Frame(name, key, raw)
        history = channel.history
        if len(history) == history.maxlen:
            channel.floor = history[0].key
        history.append(frame)
        channel.last = key
        if channel.subscribers:
            fan_out(channel.subscribers, frame)
        return frame.id

    def _subscribe(self, writer: SSEWriter, channels: tuple[str, ...]) -> None:
        if self._hub is None:
            self._hub, self._loop_thread = loop_of(writer)
        transport = transport_of(writer)
        subscription = Subscription(transport, channels)
        last_event_id = writer.last_event_id
        requested = requested_positions(last_event_id, len(channels))
        states = []
        for i, name in enumerate(channels):
            channel = self._channel(name)
            states.append(channel.state(requested[i] if requested else None))
            channel.subscribers.add(subscription)
        transport.on_close(lambda _: self._unsubscribe(subscription))
        subscription.start(last_event_id, requested, states)

    def _unsubscribe(self, subscription: Subscription) -> None:
        for name in subscription.channels:
            channel = self._channels.get(name)
            if channel is None:
                continue
            channel.subscribers.discard(subscription)
            if not channel.subscribers and not channel.history:
                del self._channels[name]
