"""The reading side of a Redis broker: which channels to read, and when.

Why not one ``XREAD BLOCK`` over every followed channel (gsse up to 0.1):
each such call costs Redis's single thread time in proportion to the number
of channels, and it is issued again after every event, so with 28 000
followed channels one call took 55 ms and publishing slowed for everyone.
Instead, every publish also announces its channel's name on the pub/sub
channel ``<prefix>:notify``. One listener greenlet per process hears those
names on its own connection and marks followed channels *dirty*; one reader
greenlet ``XREAD``\\ s only the dirty channels, from its position in each, and
writes each event to the channel's subscribers (:func:`fan_out`). The cost
per event is one short read, whatever the number of channels.

The Streams stay the truth; a notification only says where to look. One
missed while the pub/sub connection was down costs nothing: after every
(re)subscribe the reader reads each followed channel once (a sweep), and
after an outage it first checks each position against the history
(:meth:`ChannelReader._recover`: continue, or ``reset``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import redis
from gevent.event import Event as GeventEvent

from ..metrics import STATS
from .delivery_redis import DeliveryReports
from .fanout import ChannelState
from .fanout import Subscription
from .fanout import fan_out
from .frames import Frame
from .frames import Key
from .frames import format_id
from .frames import parse_id
from .redis_pool import BoundedPool

logger = logging.getLogger(__name__)

#: Events one XREAD returns per channel at most (more: the channel stays dirty).
READ_COUNT = 1000
#: Channels one XREAD names at most (a sweep of many channels is split).
READ_KEYS = 1000
#: Backoff between reconnection attempts: first and longest wait (s).
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0
#: Seconds between the listener's housekeeping (closing idle connections).
TICK = 1.0
#: Seconds the listener waits for a message before it looks at its state.
LISTEN_WAIT = 0.25

UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)

#: Reads the states of channels (``RedisBroker._read_states``).
StateReader = Callable[[tuple[str, ...], list[Key | None] | None], list[ChannelState]]


def _by_key(item: tuple[Key, str, Any, Any]) -> Key:
    return item[0]


def entry_key(entry_id: Any) -> Key:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    key = parse_id(text)
    if key is None:
        raise ValueError(f"Redis returned an entry id gsse cannot read: {text!r}")
    return key


def entry_frame(channel: str, entry_id: bytes, fields: Any) -> Frame:
    """A Stream entry as a Frame (``fields`` a dict, or a flat list from Lua)."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return Frame(channel, entry_key(entry_id), fields[b"r"])


def previous_key(fields: Any) -> Key | None:
    """The id of the entry before this one, as gsse's publish recorded it."""
    raw = fields.get(b"p") if isinstance(fields, dict) else None
    return parse_id(raw.decode(errors="replace")) if raw is not None else None


class ChannelReader:
    """Follows, for one broker in one process, the channels subscribed here."""

    def __init__(
        self,
        *,
        where: str,
        client: redis.Redis,
        pool: BoundedPool,
        listen_client: redis.Redis,
        notify: bytes,
        stream_prefix: bytes,
        read_states: StateReader,
    ) -> None:
        self.where = where
        self._client = client
        self._pool = pool
        self._listen_client = listen_client
        self._notify = notify
        self._stream_prefix = stream_prefix
        self._read_states = read_states
        #: Subscriptions of this process, by channel.
        self.subscribers: dict[str, set[Subscription]] = {}
        #: Where the reader is in each channel with subscribers here.
        self.positions: dict[str, Key] = {}
        #: Channels that may have events after their position.
        #: In the order they were announced (a dict as an ordered set), so
        #: events of several channels with the same id keep publish order.
        self._dirty: dict[str, None] = {}
        self._sweep = False
        self._recover_needed = False
        #: The listener lost Redis and has not reconnected yet.
        self.down = False
        self._down_since = 0.0
        self._wake = GeventEvent()
        self._closed = False
        self._greenlets: list[gevent.Greenlet] = []
        #: Counts of ``return_delivery`` publishes (set by the broker).
        self.deliveries: DeliveryReports | None = None

    def follow(self, channel: str, position: Key) -> None:
        """Read ``channel`` from ``position`` on (it has a subscriber now)."""
        self.positions[channel] = position
        self._dirty[channel] = None
        self._wake.set()

    def forget(self, channel: str) -> None:
        del self.subscribers[channel]
        self.positions.pop(channel, None)

    def ensure_running(self) -> None:
        if not self._greenlets or any(g.dead for g in self._greenlets):
            for greenlet in self._greenlets:
                greenlet.kill(block=False)
            self._greenlets = [
                gevent.spawn(self._listen_forever),
                gevent.spawn(self._read_forever),
            ]

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        # Let them stop by themselves: killed while connecting, redis-py
        # would leave the new socket open.
        greenlets, self._greenlets = self._greenlets, []
        gevent.joinall(greenlets, timeout=LISTEN_WAIT + 5)
        for greenlet in greenlets:
            greenlet.kill(block=True, timeout=5)
        self._listen_client.connection_pool.disconnect()

    # -- the listener greenlet -----------------------------------------------
    def _listen_forever(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closed:
            pubsub = self._listen_client.pubsub()  # type: ignore[no-untyped-call]
            try:
                self._listen(pubsub)
            except UNAVAILABLE as exc:
                STATS.broker_errors += 1
                self._went_down(exc)
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception:
                STATS.broker_errors += 1
                logger.exception("listening to Redis at %s failed", self.where)
                self._sweep = True  # names may have been missed meanwhile
                gevent.sleep(BACKOFF_MAX)
                continue
            finally:
                pubsub.close()
            delay = BACKOFF_FIRST

    def _listen(self, pubsub: Any) -> None:
        pubsub.subscribe(self._notify)
        deadline = time.monotonic() + 10
        housekeeping = time.monotonic()
        confirmed = False
        while not self._closed:
            message = pubsub.get_message(timeout=LISTEN_WAIT)
            while message is not None:
                if message["type"] == "subscribe":
                    self._subscribed(again=confirmed)
                    confirmed = True
                elif message["type"] == "message":
                    channel = message["data"].decode(errors="replace")
                    if channel in self.positions:
                        self._dirty[channel] = None
                        self._wake.set()
                message = pubsub.get_message(timeout=0)
            now = time.monotonic()
            if not confirmed and now > deadline:
                raise redis.TimeoutError("Redis did not confirm SUBSCRIBE in 10 s")
            if now - housekeeping >= TICK:
                housekeeping = now
                self._pool.close_idle()

    def _subscribed(self, *, again: bool) -> None:
        """From now on no publish goes unheard; a sweep reads what came before.

        ``again``: redis-py reconnected by itself inside ``get_message``.
        Either way Redis may have restarted, maybe without its data.
        """
        if again:
            self._pool.close_idle(0)
        if again or self.down:
            self._recover_needed = True
        self._sweep = True
        self._wake.set()

    def _went_down(self, exc: BaseException) -> None:
        # Every idle connection of the pool went to the same, gone, Redis.
        self._pool.close_idle(0)
        if self.down:
            return
        self.down = True
        self._down_since = time.monotonic()
        logger.warning(
            "Redis at %s is unreachable (%s); open streams stay open"
            " and resume when it is back (retrying with backoff)",
            self.where,
            exc,
        )

    # -- the reader greenlet -------------------------------------------------
    def _read_forever(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closed:
            busy = self._dirty or self._sweep or self._recover_needed
            if not busy or (self.down and not self._recover_needed):
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            try:
                self._read_once()
                pause = 0.0
            except UNAVAILABLE as exc:
                STATS.broker_errors += 1
                logger.debug("reading channels from Redis at %s: %s", self.where, exc)
                pause, delay = delay, min(delay * 2, BACKOFF_MAX)
            except Exception:
                STATS.broker_errors += 1
                logger.exception("reading channels from Redis at %s failed", self.where)
                pause = BACKOFF_MAX
            if pause:
                gevent.sleep(pause)
            else:
                delay = BACKOFF_FIRST

    def _read_once(self) -> None:
        if self._recover_needed:
            self._recover()
            self._recover_needed = False
            if self.down:
                self.down = False
                logger.info(
                    "Redis at %s is back after %.1f s; streams resumed",
                    self.where,
                    time.monotonic() - self._down_since,
                )
        if self._sweep:
            self._sweep = False
            self._dirty.update(dict.fromkeys(self.positions))
        dirty, self._dirty = self._dirty, {}
        channels = [channel for channel in dirty if channel in self.positions]
        try:
            for start in range(0, len(channels), READ_KEYS):
                self._read(channels[start : start + READ_KEYS])
        except BaseException:
            self._dirty = dirty | self._dirty  # read them again once Redis answers
            raise

    def _read(self, channels: list[str]) -> None:
        streams = {
            self._stream_prefix + channel.encode(): format_id(self.positions[channel])
            for channel in channels
            if channel in self.positions
        }
        if not streams:
            return
        reply = self._client.xread(streams, count=READ_COUNT)  # type: ignore[arg-type]
        if reply:
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        """Fan out what XREAD returned, across channels in id (publish) order."""
        items = reply.items() if isinstance(reply, dict) else reply
        cut = len(self._stream_prefix)
        batch: list[tuple[Key, str, Any, Any]] = []
        for stream_key, entries in items:
            channel = bytes(stream_key[cut:]).decode()
            if len(entries) >= READ_COUNT:
                self._dirty[channel] = None  # there may be more
                self._wake.set()
            batch += [(entry_key(eid), channel, eid, fields) for eid, fields in entries]
        batch.sort(key=_by_key)
        frame = None
        for key, channel, entry_id, fields in batch:
            if channel not in self.positions:
                continue  # its last subscriber left meanwhile
            previous = previous_key(fields)
            if previous is not None and previous > self.positions[channel]:
                # MAXLEN trimmed events before this reader got to them (a
                # burst longer than ``history``): never lose them silently.
                logger.warning(
                    "channel %r: Redis trimmed events before they were read (a"
                    " burst longer than the broker's history); its streams get"
                    " a 'reset' event",
                    channel,
                )
                self._reset_subscribers(channel, previous)
            self.positions[channel] = key  # past it, even if it is bad
            try:
                frame = entry_frame(channel, entry_id, fields)
            except (KeyError, TypeError, ValueError):
                STATS.broker_errors += 1
                logger.error(
                    "skipped entry %s of Redis stream %r: it was not written"
                    " by gsse (use gsse's publish, or another key prefix)",
                    format_id(key),
                    (self._stream_prefix + channel.encode()).decode(errors="replace"),
                )
                continue
            subscribers = self.subscribers.get(channel)
            if subscribers:
                fan_out(subscribers, frame)
            report = fields.get(b"d") if self.deliveries is not None else None
            if report is not None and self.deliveries is not None:
                self.deliveries.handed(report, subscribers or (), frame)
        if self.deliveries is not None:
            self.deliveries.flush()
        if frame is not None:
            STATS.broker_lag = max(0.0, time.time() - frame.key[0] / 1000)

    def _recover(self) -> None:
        """After an outage: keep resumable positions, reset the lost ones."""
        everything = tuple(self.positions)
        lost = 0
        for start in range(0, len(everything), READ_KEYS):
            channels = everything[start : start + READ_KEYS]
            states = self._read_states(channels, [self.positions[c] for c in channels])
            lost += self._reset_lost(channels, states)
        if lost:
            logger.warning(
                "Redis at %s lost the history of %d channel(s) while it was away;"
                " their streams got a 'reset' event",
                self.where,
                lost,
            )

    def _reset_lost(self, channels: tuple[str, ...], states: list[ChannelState]) -> int:
        lost = 0
        for channel, state in zip(channels, states, strict=True):
            if state.frames is not None or channel not in self.positions:
                continue
            lost += 1
            self.positions[channel] = state.last
            self._reset_subscribers(channel, state.last)
        return lost

    def _reset_subscribers(self, channel: str, last: Key) -> None:
        """Tell this process's streams of ``channel`` that events were lost."""
        for subscription in tuple(self.subscribers.get(channel, ())):
            if subscription.pending is not None:
                continue  # it reads its own state when Redis answers
            i = subscription.index[channel]
            before = format_id(subscription.positions[i])
            try:
                subscription.reset(channel, before, last=last)
            except ConnectionError:
                continue
