"""``redis://``: channels shared by every process that uses the same Redis.

Design (see docs/channels.md for the why):

- Each channel is a Redis Stream (``gsse:stream:<channel>``). A publish is
  one Lua script: ``XADD`` with an exact ``MAXLEN`` of ``history``, so the
  Stream *is* the history, and its entry id (``ms-seq``) is the event id.
  The script also keeps ``gsse:floor:<channel>``, the id after which every
  event is still in the Stream: the newest trimmed id, or the time the
  channel was first used. A ``Last-Event-ID`` is resumable exactly when it
  lies between the floor and the newest id, and the check and the replay
  read are one atomic script, so trimming cannot slip between them.
- A publish carries a random token that the script remembers while the
  publish may be retried, so retrying one whose reply was lost never adds
  the event twice.
- One reader greenlet per broker and process runs ``XREAD BLOCK`` over every
  channel that has subscribers here and fans each event out to them (one
  encoding per event and process). ``CLIENT UNBLOCK`` wakes it when a
  channel is added.
- When Redis goes away, streams stay open. The reader retries with backoff;
  once Redis answers it checks each channel's position against the floor:
  still resumable means ``XREAD`` simply continues (the missed events
  arrive), lost means a ``reset`` to the channel's subscribers. New streams
  wait for Redis inside their stream. ``publish`` retries for
  ``publish_timeout`` seconds, then raises :class:`gsse.BrokerUnavailable`.

Publishing needs no gevent (a plain script may publish); subscribing runs
under the gsse server's event loop.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "redis:// brokers need the redis package: pip install 'gsse[redis]'"
    ) from None

import gevent
from gevent.event import Event as GeventEvent

from ..exceptions import BrokerUnavailable
from ..metrics import STATS
from ..writer import SSEWriter
from .base import Broker
from .base import transport_of
from .fanout import ChannelState
from .fanout import Subscription
from .fanout import fan_out
from .fanout import requested_positions
from .frames import Frame
from .frames import Key
from .frames import format_id
from .frames import parse_id
from .lua import PUBLISH
from .lua import STATE

logger = logging.getLogger(__name__)

#: How long one XREAD waits for events before it is issued again (ms).
BLOCK_MS = 5000
#: Events one XREAD returns per channel at most.
READ_COUNT = 1000
#: Backoff between reconnection attempts: first and longest wait (s).
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0
#: Seconds a publish keeps retrying while Redis is unreachable.
PUBLISH_TIMEOUT = 5.0
#: Seconds a command (other than the reader's XREAD) may wait for its reply.
REPLY_TIMEOUT = 5.0

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)


def _where(url: str) -> str:
    """The URL without credentials, for log lines and errors."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisBroker(Broker):
    """A broker that shares channels through Redis; see :class:`gsse.Broker`.

    :param url: ``redis://[:password@]host:port/db`` (also ``rediss://``,
        ``unix://``), as ``redis.Redis.from_url`` reads it.
    :param history: events each channel keeps (the Stream's exact MAXLEN).
    :param publish_timeout: seconds a publish retries while Redis is away.
    :param prefix: the prefix of gsse's Redis keys.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        publish_timeout: float = PUBLISH_TIMEOUT,
        prefix: str = "gsse",
    ) -> None:
        super().__init__(history=history)
        if isinstance(publish_timeout, bool) or not isinstance(
            publish_timeout, (int, float)
        ):
            raise TypeError(
                f"publish_timeout must be a number of seconds, got {publish_timeout!r}"
            )
        if publish_timeout < 0:
            raise ValueError(
                f"publish_timeout must be 0 or more seconds, got {publish_timeout!r}"
            )
        self.url = url
        self.where = _where(url)
        self.publish_timeout = publish_timeout
        self._prefix = prefix
        self._stream_prefix = f"{prefix}:stream:".encode()
        # Nothing connects yet: an app may create its broker at import time,
        # before Redis is up or before the server forks its workers.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=REPLY_TIMEOUT,
            socket_connect_timeout=2.0,
            retry=Retry(NoBackoff(), 0),
        )
        #: The reader's own connection (XREAD BLOCK holds it), made by the
        #: reader in the process that runs it.
        self._reader_client: redis.Redis | None = None
        self._publish = self._client.register_script(PUBLISH)
        self._state = self._client.register_script(STATE)
        #: Subscriptions of this process, by channel.
        self._subscribers: dict[str, set[Subscription]] = {}
        #: Where the reader is in each channel with subscribers here.
        self._positions: dict[str, Key] = {}
        self._generation = 0
        self._reader_generation = 0
        self._reader_id: int | None = None
        self._reader: gevent.Greenlet | None = None
        self._wake = GeventEvent()
        self._closed = False
        #: A new stream is waiting for Redis (log that once, not per stream).
        self._waiting = False

    def __repr__(self) -> str:
        return f"<RedisBroker {self.where} channels={len(self._subscribers)}>"

    def _keys(self, channel: str) -> list[bytes]:
        name = channel.encode()
        return [self._stream_prefix + name, f"{self._prefix}:floor:".encode() + name]

    # -- publishing ----------------------------------------------------------
    def publish(self, channel: str, data: Any, *, event: str | None = None) -> str:
        raw = self._encode(channel, data, event)
        token = f"{self._prefix}:published:{os.urandom(12).hex()}".encode()
        keys = [*self._keys(channel), token]
        deadline = time.monotonic() + self.publish_timeout
        # The token must outlive every retry (each may wait for its reply).
        lifetime = int(self.publish_timeout + 2 * REPLY_TIMEOUT) + 1
        delay = BACKOFF_FIRST / 2
        first = True
        while True:
            try:
                new_id = self._publish(keys=keys, args=[self.history, raw, lifetime])
                return new_id.decode() if isinstance(new_id, bytes) else str(new_id)
            except _UNAVAILABLE as exc:
                STATS.broker_errors += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logger.error(
                        "publishing to channel %r failed: Redis at %s did not"
                        " answer for %.1f s (%s)",
                        channel,
                        self.where,
                        self.publish_timeout,
                        exc,
                    )
                    raise BrokerUnavailable(
                        f"Redis at {self.where} did not answer for"
                        f" {self.publish_timeout:g} s ({exc}); the event to channel"
                        f" {channel!r} was not published. Check that Redis is up"
                        " and reachable, then publish again."
                    ) from None
                logger.log(
                    logging.WARNING if first else logging.DEBUG,
                    "publishing to channel %r: Redis at %s is unreachable (%s);"
                    " retrying for up to %.1f s",
                    channel,
                    self.where,
                    exc,
                    remaining,
                )
                first = False
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, BACKOFF_MAX / 4)

    # -- subscribing ---------------------------------------------------------
    def _subscribe(self, writer: SSEWriter, channels: tuple[str, ...]) -> None:
        transport = transport_of(writer)
        subscription = Subscription(transport, channels)
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(subscription)
        transport.on_close(lambda _: self._unsubscribe(subscription))
        last_event_id = writer.last_event_id
        requested = requested_positions(last_event_id, len(channels))
        states = self._states_while_open(subscription, requested)
        if states is None:
            return
        generation = self._generation
        gaps: list[tuple[str, Key, Key]] = []
        for channel, state in zip(channels, states, strict=True):
            known = self._positions.get(channel)
            if known is None:
                self._positions[channel] = state.last
                self._generation += 1
            elif state.last < known:
                # The reader started this channel from another stream's later
                # snapshot: what lies between reaches this stream from history.
                gaps.append((channel, state.last, known))
        if gaps and subscription.pending is not None:
            try:
                subscription.pending[:0] = self._read_gaps(gaps)
            except _UNAVAILABLE:
                STATS.broker_errors += 1
                transport.abort("closed by the server: Redis went away meanwhile")
                return
        subscription.start(last_event_id, requested, states)
        self._ensure_reader()
        if self._generation != generation:
            self._wake_reader(self._generation)

    def _states_while_open(
        self, subscription: Subscription, requested: list[Key | None] | None
    ) -> list[ChannelState] | None:
        """Each channel's state; while Redis is away, wait (the stream is open)."""
        delay = BACKOFF_FIRST
        while not subscription.transport.closed:
            try:
                states = self._read_states(subscription.channels, requested)
                self._waiting = False
                return states
            except _UNAVAILABLE as exc:
                STATS.broker_errors += 1
                logger.log(
                    logging.DEBUG if self._waiting else logging.WARNING,
                    "new streams wait for Redis at %s, which is unreachable (%s);"
                    " they start once it answers",
                    self.where,
                    exc,
                )
                self._waiting = True
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        return None

    def _read_states(
        self, channels: tuple[str, ...], requested: list[Key | None] | None
    ) -> list[ChannelState]:
        pipe = self._client.pipeline(transaction=False)
        for i, channel in enumerate(channels):
            after = requested[i] if requested is not None else None
            args: list[str | int] = [
                "" if after is None else format_id(after),
                self.history,
            ]
            self._state(keys=self._keys(channel), args=args, client=pipe)
        replies = pipe.execute()
        states = []
        for channel, (last, entries) in zip(channels, replies, strict=True):
            frames = None
            if entries is not None:
                frames = [self._frame(channel, eid, fields) for eid, fields in entries]
            states.append(ChannelState(_key(last), frames))
        return states

    def _read_gaps(self, gaps: list[tuple[str, Key, Key]]) -> list[Frame]:
        pipe = self._client.pipeline(transaction=False)
        for channel, after, upto in gaps:
            key = self._keys(channel)[0]
            pipe.xrange(key, f"({format_id(after)}", format_id(upto))
        frames = []
        for (channel, _, _), entries in zip(gaps, pipe.execute(), strict=True):
            frames += [self._frame(channel, eid, fields) for eid, fields in entries]
        return frames

    @staticmethod
    def _frame(channel: str, entry_id: bytes, fields: Any) -> Frame:
        if isinstance(fields, list):  # a raw XRANGE reply inside a script
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        return Frame(channel, _key(entry_id), fields[b"r"])

    def _unsubscribe(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            subscribers = self._subscribers.get(channel)
            if subscribers is None:
                continue
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[channel]
                self._positions.pop(channel, None)

    # -- the reader greenlet -------------------------------------------------
    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.dead:
            self._reader = gevent.spawn(self._read_forever)
        self._wake.set()

    def _wake_reader(self, generation: int) -> None:
        """Make the reader issue its XREAD again, with the new channels."""
        for _ in range(200):
            if self._reader_generation >= generation or self._closed:
                return
            reader_id = self._reader_id
            try:
                if reader_id is not None and self._client.client_unblock(reader_id):
                    return
            except _UNAVAILABLE:
                return  # the reader is recovering and will pick the channels up
            gevent.sleep(0.005)

    def _read_forever(self) -> None:
        if self._reader_client is None:
            self._reader_client = redis.Redis(
                connection_pool=redis.ConnectionPool.from_url(
                    self.url,
                    socket_timeout=BLOCK_MS / 1000 + 5.0,
                    socket_connect_timeout=2.0,
                    max_connections=1,
                    retry=Retry(NoBackoff(), 0),
                ),
            )
        client = self._reader_client
        delay = BACKOFF_FIRST
        down_since = 0.0
        while not self._closed:
            if not self._positions:
                self._wake.clear()
                self._wake.wait(BLOCK_MS / 1000)
                continue
            try:
                if down_since:
                    self._recover()
                if self._reader_id is None:
                    self._reader_id = client.client_id()
                self._reader_generation = self._generation
                streams = {
                    self._stream_prefix + channel.encode(): format_id(position)
                    for channel, position in self._positions.items()
                }
                reply = client.xread(
                    streams,  # type: ignore[arg-type]
                    count=READ_COUNT,
                    block=BLOCK_MS,
                )
            except _UNAVAILABLE as exc:
                STATS.broker_errors += 1
                self._reader_id = None
                if not down_since:
                    down_since = time.monotonic()
                    logger.warning(
                        "Redis at %s is unreachable (%s); open streams stay open"
                        " and resume when it is back (retrying with backoff)",
                        self.where,
                        exc,
                    )
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception:
                STATS.broker_errors += 1
                logger.exception("reading channels from Redis at %s failed", self.where)
                gevent.sleep(BACKOFF_MAX)
                continue
            if down_since:
                logger.info(
                    "Redis at %s is back after %.1f s; streams resumed",
                    self.where,
                    time.monotonic() - down_since,
                )
                down_since = 0.0
                delay = BACKOFF_FIRST
            if reply:
                self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        items = reply.items() if isinstance(reply, dict) else reply
        cut = len(self._stream_prefix)
        for stream_key, entries in items:
            channel = bytes(stream_key[cut:]).decode()
            if channel not in self._positions:
                continue  # its last subscriber left meanwhile
            frame = None
            for entry_id, fields in entries:
                key = _key(entry_id)
                self._positions[channel] = key  # past it, even if it is bad
                try:
                    frame = self._frame(channel, entry_id, fields)
                except (KeyError, TypeError, ValueError):
                    STATS.broker_errors += 1
                    logger.error(
                        "skipped entry %s of Redis stream %r: it was not written"
                        " by gsse (use gsse's publish, or another key prefix)",
                        format_id(key),
                        bytes(stream_key).decode(errors="replace"),
                    )
                    continue
                subscribers = self._subscribers.get(channel)
                if subscribers:
                    fan_out(subscribers, frame)
            if frame is not None:
                STATS.broker_lag = max(0.0, time.time() - frame.key[0] / 1000)

    def _recover(self) -> None:
        """After an outage: keep resumable positions, reset the lost ones."""
        channels = tuple(self._positions)
        states = self._read_states(channels, [self._positions[c] for c in channels])
        lost = 0
        for channel, state in zip(channels, states, strict=True):
            if state.frames is not None or channel not in self._positions:
                continue
            lost += 1
            self._positions[channel] = state.last
            for subscription in tuple(self._subscribers.get(channel, ())):
                if subscription.pending is not None:
                    continue  # it reads its own state when Redis answers
                i = subscription.index[channel]
                before = format_id(subscription.positions[i])
                try:
                    subscription.reset(channel, before, last=state.last)
                except ConnectionError:
                    continue
        if lost:
            logger.warning(
                "Redis at %s lost the history of %d channel(s) while it was away;"
                " their streams got a 'reset' event",
                self.where,
                lost,
            )

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True, timeout=5)
        self._client.close()
        if self._reader_client is not None:
            self._reader_client.close()


def _key(entry_id: Any) -> Key:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    key = parse_id(text)
    if key is None:
        raise ValueError(f"Redis returned an entry id gsse cannot read: {text!r}")
    return key
