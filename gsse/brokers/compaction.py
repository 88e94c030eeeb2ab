"""Compacted (keyed) channels and history by age: what both backends share.

``broker.publish(channel, data, key="AAPL")`` makes an event that
supersedes every earlier event with the same key on that channel, like a
compacted log. Both backends keep the channel's newest event per key (the
*compacted state*: a dict in memory, a Redis hash) besides its history.
Superseded events may stay in the history until it is trimmed, but they
are never replayed: replay skips an event whose key has a newer one.

Deliberate choices:

- ``snapshot=True`` sends a new stream the compacted state (the newest
  event of every key, in publish order) before live events. After it, an
  id-only frame carries the channel's newest id when that is not the last
  event sent, so a reconnect resumes exactly after the snapshot. A stream
  whose ``Last-Event-ID`` cannot be resumed gets its ``reset`` and then the
  snapshot: it is whole again without reloading anything.
- Conflation (:class:`Backlog`): once a stream is *behind* (more than
  ``BEHIND_BYTES`` unsent: its socket took no more), keyed events are held
  back per stream, one per key (a newer one replaces the held one, at the
  newer one's place in publish order), and sent as the client reads. An
  unkeyed event arriving meanwhile is held too (order is kept); only those
  count towards the overflow limit, so a slow reader of a keyed channel
  stays connected and sees current values. A client that reads nothing at
  all is still closed after ``send_timeout``.
- A stream that receives keyed events caps what its kernel socket holds
  unsent (``TCP_NOTSENT_LOWAT``, ``KERNEL_UNSENT``): otherwise the kernel
  would queue megabytes of stale prices before gsse saw the client lag.
- ``history_ttl``: events older than that many seconds are neither kept
  nor replayed, keyed or not. Expired history moves the channel's floor
  like trimming by count does, so an older ``Last-Event-ID`` gets the same
  ``reset`` event.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

import gevent

from ..exceptions import ClientDisconnected
from ..exceptions import CloseReason
from ..streams import OVERFLOW_FACTOR
from ..streams import Stream
from ..transport import CORK_BYTES
from .frames import Frame
from .frames import Key
from .frames import check_name
from .frames import format_id

if TYPE_CHECKING:  # pragma: no cover - typing only (fanout imports this module)
    from .fanout import Subscription

#: The longest compaction key ``publish`` accepts.
MAX_KEY_LENGTH = 200
#: Unsent bytes past which a stream is behind: a write batch of a client
#: that keeps up is sent at ``CORK_BYTES``, so more means the socket is full.
BEHIND_BYTES = CORK_BYTES
#: Unsent bytes the kernel may hold for a stream of a keyed channel.
KERNEL_UNSENT = 16 * 1024
#: Seconds between two looks at a behind stream's socket: the first, then
#: doubled while the client takes nothing, up to the last.
POLL_FIRST = 0.005
POLL_MAX = 0.05
_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)


def check_key(key: Any) -> str | None:
    """``key`` if it is ``None`` or a usable compaction key, else raise.

    :raises TypeError: not a ``str``.
    :raises ValueError: empty, too long, or with a control character.
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise TypeError(
            f"publish(key=...) must be a str or None, not {type(key).__name__}: {key!r}"
        )
    return check_name(key, "publish(key=...)", MAX_KEY_LENGTH)


def check_history_ttl(ttl: Any) -> float | None:
    """``ttl`` as seconds (``None``: no age limit), else raise saying why."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"history_ttl must be a number of seconds or None, got {ttl!r}")
    if not 0 < ttl < float("inf"):
        raise ValueError(
            f"history_ttl must be more than 0 seconds (None: no age limit), got {ttl!r}"
        )
    return float(ttl)


def check_snapshot(snapshot: Any) -> bool:
    """``snapshot`` if it is a bool, else raise (``snapshot="no"`` is a mistake)."""
    if not isinstance(snapshot, bool):
        raise TypeError(f"snapshot must be True or False, got {snapshot!r}")
    return snapshot


def ttl_cutoff(ttl: float | None) -> Key | None:
    """The oldest id still kept under ``ttl`` seconds (``None``: no limit)."""
    if ttl is None:
        return None
    return (int(time.time() * 1000 - ttl * 1000), 0)


def live_frames(frames: Iterable[Frame], newest: dict[str, Frame]) -> list[Frame]:
    """``frames`` without those a newer event of the same key superseded."""
    return [
        frame
        for frame in frames
        if frame.ckey is None or newest.get(frame.ckey) is frame
    ]


def keep_current(subscription: Subscription) -> None:
    """The stream gets keyed events: cap its kernel queue (once, if it can)."""
    subscription.keyed = True
    raw = getattr(subscription.stream.transport, "_raw", None)
    if raw is None or _NOTSENT_LOWAT is None:
        return  # another host's transport, or not Linux: conflation still works
    try:
        raw.setsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT, KERNEL_UNSENT)
    except OSError:
        pass  # not TCP (a Unix socket): the kernel queue is small anyway


def behind(stream: Stream) -> bool:
    """Whether ``stream`` holds more than its socket would take now."""
    return stream.pending > BEHIND_BYTES


def id_only(wire_id: str) -> bytes:
    """A frame that only moves the client's ``Last-Event-ID`` (not dispatched)."""
    return b"id: %s\n\n" % wire_id.encode()


class Backlog:
    """Events held back for one slow stream: conflated per key, in order.

    Held frames are keyed by ``(channel, key)`` for keyed events, so a newer
    one replaces (and moves behind) the older, and by ``(channel, id)`` for
    unkeyed ones. A greenlet sends them as the client reads.
    """

    __slots__ = ("subscription", "frames", "unkeyed", "sent", "greenlet")

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.frames: dict[tuple[str, Any], Frame] = {}
        #: Bytes of unkeyed events held: those count towards the overflow.
        self.unkeyed = 0
        #: The stream's position in each channel as the client knows it (the
        #: subscription's positions run ahead, over what is held here).
        self.sent = list(subscription.positions)
        self.greenlet: gevent.Greenlet | None = None

    def hold(self, frame: Frame) -> None:
        """Queue ``frame``; drop what it supersedes; close on unkeyed overflow."""
        frames = self.frames
        if frame.ckey is not None:
            ident: tuple[str, Any] = (frame.channel, frame.ckey)
            frames.pop(ident, None)  # conflation: the client needs the newest
        else:
            ident = (frame.channel, frame.key)
            self.unkeyed += len(frame.raw)
        frames[ident] = frame
        stream = self.subscription.stream
        limit = OVERFLOW_FACTOR * stream.buffer_size + stream.largest
        if self.unkeyed + stream.pending > limit:
            stream.abort(CloseReason.OVERFLOW, "the client reads too slowly")
            return
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._send_as_read)

    def _send_as_read(self) -> None:
        """Send held frames as the socket takes bytes; time out a stuck client."""
        subscription = self.subscription
        stream = subscription.stream
        frames = self.frames
        before, progress = stream.pending, time.monotonic()
        poll = POLL_FIRST
        try:
            while frames and not stream.closed:
                pending, now = stream.pending, time.monotonic()
                if pending < before:
                    progress, poll = now, POLL_FIRST  # the client took bytes
                else:
                    poll = min(poll * 2, POLL_MAX)
                before = pending
                if not behind(stream):
                    while frames and not behind(stream):
                        frame = frames.pop(next(iter(frames)))
                        if frame.ckey is None:
                            self.unkeyed -= len(frame.raw)
                        self._write(frame)
                    before, progress = stream.pending, now
                elif stream.send_timeout and now - progress > stream.send_timeout:
                    stream.abort(CloseReason.SEND_TIMEOUT)
                    return
                gevent.sleep(poll)
        except ClientDisconnected:
            pass
        finally:
            frames.clear()
            if subscription.backlog is self:
                subscription.backlog = None

    def _write(self, frame: Frame) -> None:
        subscription = self.subscription
        i = subscription.index[frame.channel] if subscription.multi else 0
        self.sent[i] = frame.key
        if subscription.multi:
            wire_id = ",".join(format_id(key) for key in self.sent)
            subscription.stream.send(frame.with_id(wire_id), wait=False)
        else:
            subscription.stream.send(frame.single, wait=False)


def hold(subscription: Subscription, frame: Frame) -> None:
    """Start or add to ``subscription``'s backlog (its buffer is full)."""
    backlog = subscription.backlog
    if backlog is None:
        backlog = subscription.backlog = Backlog(subscription)
    backlog.hold(frame)
