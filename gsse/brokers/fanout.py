"""One subscribed stream: where it is in each channel, and how it resumes.

A :class:`Subscription` is what a broker keeps per stream. Delivery goes
through the stream's owner (:mod:`gsse.streams`), in the publishing (or
Redis-reading) greenlet: :func:`fan_out` picks the streams that get an
event and hands them to :func:`~gsse.streams.broadcast` (framed once, one
buffer append per stream: no queue, no greenlet switch per subscriber);
replays and multi-channel streams use ``Stream.send(wait=False)``. A
subscriber that cannot keep up overflows its bounded buffer and is closed
(``CloseReason.OVERFLOW``; it resumes by replay), so it never slows the
others.

Resuming without loss or duplicates: a subscription is registered *before*
its backend is asked for history, buffering what arrives meanwhile
(``pending``); then it sends the ``reset`` events and the replay, then the
buffered events. Every event passes :meth:`Subscription.deliver`, which
drops any id not newer than the stream's position in that channel, so an
event seen both in history and live is sent once.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import NamedTuple

from ..exceptions import ClientDisconnected
from ..exceptions import CloseReason
from ..streams import Stream
from ..streams import broadcast
from .compaction import Backlog
from .compaction import behind
from .compaction import hold
from .compaction import id_only
from .compaction import keep_current
from .frames import Frame
from .frames import Key
from .frames import format_id
from .frames import parse_id
from .frames import reset_event

logger = logging.getLogger(__name__)

#: Events a subscription buffers while its backend answers; more is a stall.
MAX_PENDING = 100_000

#: Streams whose next subscription ends them after an event type (see
#: :func:`end_after`), as that event's first line.
_END_AFTER: weakref.WeakKeyDictionary[Stream, bytes] = weakref.WeakKeyDictionary()


def end_after(stream: Stream, event: str) -> None:
    """Make ``stream``'s next subscription close it right after ``event: <event>``.

    For streams that follow a log to its last event (a run's ``end``, see
    :mod:`gsse.runs`). Said before the broker subscribes the stream, so the
    brokers' ``_subscribe`` need not know; the replay is watched as well.
    """
    _END_AFTER[stream] = f"event: {event}\n".encode()


class ChannelState(NamedTuple):
    """What a backend says about one channel when a stream subscribes.

    :param last: the channel's newest id (its floor when it has no event).
    :param frames: the events after the asked position, oldest first, or
        ``None`` when history no longer holds everything after it.
    :param snapshot: for ``snapshot=True`` streams, the newest event of every
        key, oldest first (see :mod:`.compaction`).
    """

    last: Key
    frames: list[Frame] | None
    snapshot: list[Frame] | None = None


def requested_positions(
    last_event_id: str | None, count: int
) -> list[Key | None] | None:
    """The positions a ``Last-Event-ID`` names, one per channel.

    ``None`` when there is no header (live events only); a list whose items
    are ``None`` for channels the header does not name a valid id for.
    """
    if not last_event_id:
        return None
    parts = last_event_id.split(",")
    if len(parts) != count:
        return [None] * count
    return [parse_id(part) for part in parts]


class Subscription:
    """One stream's subscription to one or more channels."""

    __slots__ = (
        "stream",
        "channels",
        "positions",
        "index",
        "multi",
        "pending",
        "resets",
        "snapshot",
        "backlog",
        "keyed",
        "end_after",
    )

    def __init__(
        self,
        stream: Stream,
        channels: tuple[str, ...],
        *,
        snapshot: bool = False,
    ) -> None:
        self.stream = stream
        self.channels = channels
        self.positions: list[Key] = [(0, 0)] * len(channels)
        self.index = {channel: i for i, channel in enumerate(channels)}
        #: The first line of the event after which the stream ends, if any.
        self.end_after = _END_AFTER.pop(stream, None)
        # Several channels, or an event to watch for: delivered one by one
        # (``deliver``), never in fan_out's broadcast, whose cost stays as is.
        self.multi = len(channels) > 1 or self.end_after is not None
        #: Events that arrived before the replay was sent (None: live).
        self.pending: list[Frame] | None = []
        #: Channels this stream was sent a ``reset`` for (once each).
        self.resets: set[str] = set()
        #: Send the newest event of every key first (keyed channels).
        self.snapshot = snapshot
        #: Events held back while a keyed channel's client reads slowly.
        self.backlog: Backlog | None = None
        #: It received a keyed event (its kernel queue is capped since).
        self.keyed = False

    @property
    def wire_id(self) -> str:
        """The stream's position as a ``Last-Event-ID`` (see frames.py)."""
        return ",".join(format_id(key) for key in self.positions)

    def deliver(self, frame: Frame) -> None:
        """Send ``frame`` unless this stream has it already (never blocks)."""
        pending = self.pending
        if pending is not None:
            pending.append(frame)
            if len(pending) > MAX_PENDING:
                self.stream.abort(CloseReason.OVERFLOW, "the stream fell behind")
            return
        i = self.index[frame.channel] if self.multi else 0
        if frame.key <= self.positions[i]:
            return
        if frame.ckey is not None and not self.keyed:
            keep_current(self)
        if self.backlog is not None or (frame.ckey is not None and behind(self.stream)):
            hold(self, frame)  # conflation (see compaction.py)
            self.positions[i] = frame.key
            return
        self.positions[i] = frame.key
        payload = frame.with_id(self.wire_id) if self.multi else frame.single
        try:
            self.stream.send(payload, wait=False)
        except ClientDisconnected:
            return
        if self.end_after is not None and frame.raw.startswith(self.end_after):
            self.stream.close(CloseReason.CLOSED_BY_APP)

    def start(
        self,
        last_event_id: str | None,
        requested: list[Key | None] | None,
        states: list[ChannelState],
    ) -> None:
        """Send resets and the replay, then what arrived meanwhile; go live."""
        replay: list[Frame] = []
        resets: list[str] = []
        snapshots: list[tuple[int, Key]] = []
        for i, (channel, state) in enumerate(zip(self.channels, states, strict=True)):
            position = requested[i] if requested is not None else None
            if requested is None:
                self.positions[i] = state.last
            elif position is not None and state.frames is not None:
                self.positions[i] = position
                replay += state.frames
                continue
            else:
                self.positions[i] = state.last
                resets.append(channel)
            if self.snapshot and state.snapshot is not None:
                snapshots.append((i, state.last))
                replay += state.snapshot
        replay.sort(key=_by_key)
        pending, self.pending = self.pending or [], None
        try:
            # Only the last reset carries the id (every channel's new
            # position): a client cut off after an earlier one must come back
            # with its old id and get the resets it missed, not an id that
            # skips them (and N channels would send N ids of N parts each).
            for n, channel in enumerate(resets, 1):
                self.reset(channel, last_event_id, with_id=n == len(resets))
            for i, _ in snapshots:
                self.positions[i] = (0, 0)  # the snapshot is older than ``last``
            self.deliver_all(replay)
            if snapshots:
                self._after_snapshot(snapshots)
            self.deliver_all(pending)
        except ClientDisconnected:
            return

    def _after_snapshot(self, snapshots: list[tuple[int, Key]]) -> None:
        """Move the client's position to each channel's newest id, if behind."""
        moved = False
        for i, last in snapshots:
            if self.positions[i] < last:
                self.positions[i] = last
                moved = True
        # Held snapshot events carry their own ids; then a resume replays
        # the rest, which is exactly what was held.
        if moved and self.backlog is None and not self.stream.closed:
            self.stream.send(id_only(self.wire_id), wait=False)

    def deliver_all(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            if self.stream.closed:
                return
            self.deliver(frame)

    def reset(
        self,
        channel: str,
        last_event_id: str | None,
        last: Key | None = None,
        *,
        with_id: bool = True,
    ) -> None:
        """Tell the client to reload ``channel``: its position was lost.

        At most once per stream and channel; a second loss closes the stream
        instead, and the client's reconnect starts a new stream.

        :param with_id: send the stream's position as the event's ``id:``.
        """
        i = self.index[channel]
        if last is not None:
            self.positions[i] = last
        if channel in self.resets:
            logger.info(
                "stream %d %s: closing, channel %r lost events a second time",
                self.stream.stream_id,
                self.stream.path,
                channel,
                extra=self.stream.log_context,
            )
            self.stream.abort(CloseReason.CHANNEL_LOST)
            return
        self.resets.add(channel)
        wire_id = self.wire_id if with_id else None
        self.stream.send(reset_event(channel, last_event_id, wire_id), wait=False)


def _by_key(frame: Frame) -> Key:
    return frame.key


def fan_out(subscribers: Iterable[Subscription], frame: Frame) -> None:
    """Deliver one encoded event to every subscriber of its channel.

    The common case (a live one-channel stream that is behind this event)
    is picked inline and the event goes to all of them in one
    :func:`~gsse.streams.broadcast`: this loop runs once per event and
    subscriber, so it is the broker's hot path.
    """
    key = frame.key
    keyed = frame.ckey is not None
    live: list[Stream] = []
    for subscription in tuple(subscribers):
        if (
            subscription.multi
            or subscription.pending is not None
            or subscription.backlog is not None
        ):
            subscription.deliver(frame)
            continue
        if keyed and (not subscription.keyed or behind(subscription.stream)):
            subscription.deliver(frame)  # conflation (see compaction.py)
            continue
        positions = subscription.positions
        if key <= positions[0]:
            continue
        positions[0] = key
        live.append(subscription.stream)
    if live:
        broadcast(live, frame.single)
