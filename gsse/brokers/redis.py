"""``redis://``: channels shared by every process that uses the same Redis.

Design (see docs/channels.md for the why):

- Each channel is a Redis Stream (``gsse:stream:<channel>``). A publish is
  one Lua script (lua.py): ``XADD`` with an exact ``MAXLEN`` of ``history``,
  so the Stream *is* the history, and its entry id (``ms-seq``) is the event
  id. Each entry also records the id before it, so the oldest entry tells
  the newest trimmed id (the floor). Only publishing writes history:
  subscribing reads it, and writes only presence counts that expire
  (presence_redis.py).
- A ``Last-Event-ID`` is resumable exactly when it lies between the floor
  and the newest id, and the check and the replay read are one atomic
  script, so trimming cannot slip between them.
- A publish carries a random token that the script remembers while the
  publish may be retried, so retrying one whose reply was lost never adds
  the event twice.
- Per broker and process, one listener hears which channels got events and
  one reader reads only those (redis_reader.py), on a bounded pool of
  connections (redis_pool.py) plus one pub/sub connection.
- When Redis goes away, streams stay open; once it answers, each channel
  continues (the missed events arrive) or gets a ``reset``. New streams
  wait for Redis inside their stream. ``publish`` retries for
  ``publish_timeout`` seconds, then raises :class:`gsse.BrokerUnavailable`.

Publishing needs no gevent (a plain script may publish); subscribing runs
under the gsse server's event loop.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

try:
    import redis
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "redis:// brokers need the redis package: pip install 'gsse[redis]'"
    ) from None

import gevent

from ..exceptions import CloseReason
from ..metrics import STATS
from ..writer import SSEWriter
from .base import Broker
from .base import stream_of
from .compaction import check_key
from .delivery_redis import DeliveryReports
from .delivery_redis import wait_delivery
from .fanout import ChannelState
from .fanout import Subscription
from .fanout import requested_positions
from .frames import Frame
from .frames import Key
from .frames import format_id
from .lua import PUBLISH
from .lua_compact import PUBLISH_KEYED
from .lua_compact import STATE_KEYED
from .presence_redis import PRESENCE_TTL
from .presence_redis import RedisPresence
from .presence_redis import check_presence_ttl
from .redis_compact import channel_state
from .redis_compact import keyed_keys
from .redis_compact import ttl_ms
from .redis_connect import HEALTH_CHECK_SECONDS as HEALTH_CHECK_SECONDS
from .redis_connect import PUBLISH_TIMEOUT
from .redis_connect import REPLY_TIMEOUT
from .redis_connect import command_pool
from .redis_connect import connection_options as connection_options
from .redis_connect import listen_client
from .redis_pool import BoundedPool
from .redis_publish import publish_pipelined
from .redis_publish import reply_text
from .redis_publish import retry_publish
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import UNAVAILABLE
from .redis_reader import ChannelReader
from .redis_reader import entry_frame
from .redis_topology import KeyNames
from .redis_topology import where_of

logger = logging.getLogger(__name__)


class RedisBroker(Broker):
    """A broker that shares channels through Redis; see :class:`gsse.Broker`.

    :param url: ``redis://[:password@]host:port/db`` (also ``rediss://``,
        ``unix://``), as ``redis.Redis.from_url`` reads it. Sentinel and
        Cluster: :class:`~gsse.brokers.redis_sentinel.RedisSentinelBroker`,
        :class:`~gsse.brokers.redis_cluster.RedisClusterBroker`.
    :param history: events each channel keeps (the Stream's exact MAXLEN).
    :param publish_timeout: seconds a publish retries while Redis is away.
    :param prefix: the prefix of gsse's Redis keys.
    :param history_ttl: seconds events are kept (``None``: no age limit).

    .. versionadded:: 0.1
    """

    #: Key names carry ``{channel}`` hash tags (Redis Cluster).
    hash_tags = False

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        publish_timeout: float = PUBLISH_TIMEOUT,
        prefix: str = "gsse",
        presence_ttl: float = PRESENCE_TTL,
        history_ttl: float | None = None,
    ) -> None:
        super().__init__(history=history, history_ttl=history_ttl)
        self.presence_ttl = check_presence_ttl(presence_ttl)
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
        self.where = where_of(url)
        self.publish_timeout = publish_timeout
        self._prefix = prefix
        self._keys = KeyNames(prefix, hash_tags=self.hash_tags)
        self._stream_prefix = f"{prefix}:stream:".encode()
        self._notify = f"{prefix}:notify".encode()
        # Nothing connects yet: an app may create its broker at import time,
        # before Redis is up or before the server forks its workers.
        self._connect(url)
        #: A new stream is waiting for Redis (log that once, not per stream).
        self._waiting = False

    def _connect(self, url: str) -> None:
        """Make the clients (none connects yet) and the reader.

        Subclasses for Sentinel and Cluster make theirs instead.
        """
        self._pool: BoundedPool = command_pool(url)
        self._client = redis.Redis(connection_pool=self._pool)
        self._start(self._listen_client())

    def _listen_client(self) -> redis.Redis:
        """A new client of one connection for a pub/sub listener."""
        return listen_client(self.url)

    def _start(self, listen_client: redis.Redis) -> None:
        """Register the scripts and make the reader, once ``_client`` exists."""
        self._publish = self._client.register_script(PUBLISH)
        self._publish_keyed = self._client.register_script(PUBLISH_KEYED)
        self._state = self._client.register_script(STATE_KEYED)
        self._reader = ChannelReader(
            where=self.where,
            client=self._client,
            pool=self._pool,
            listen_client=listen_client,
            notify=self._notify,
            stream_prefix=self._stream_prefix,
            read_states=self._read_states,
        )
        self._reader.deliveries = DeliveryReports(
            lambda: self._client, lambda: self._members_redis().proc, self._lifetime()
        )

    def _lifetime(self) -> int:
        """Seconds a publish's token (and delivery report) must live: every
        retry may wait for its reply."""
        return int(self.publish_timeout + 2 * REPLY_TIMEOUT) + 1

    def _make_presence(self) -> RedisPresence:
        return RedisPresence(
            self._client, self._listen_client(), self._prefix, self.presence_ttl
        )

    def _members_redis(self) -> RedisPresence:
        store = self._members()
        assert isinstance(store, RedisPresence)
        return store

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"<{name} {self.where} channels={len(self._reader.subscribers)}>"

    def live_subscribers(self, channel: str) -> int:
        subscribers = self._reader.subscribers.get(channel, ())
        return sum(1 for s in subscribers if s.pending is None)

    @property
    def reachable(self) -> bool:
        """False from when the listener loses Redis until it reconnects."""
        return not self._reader.down

    def followed_channels(self) -> int:
        """Channels this process reads from Redis (those with subscribers here)."""
        return len(self._reader.positions)

    def _stream_key(self, channel: str) -> bytes:
        return self._keys.key("stream", channel)

    # -- publishing ----------------------------------------------------------
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
        token = self._keys.token(channel)
        report = token + b":delivered" if return_delivery else None
        deadline = time.monotonic() + self.publish_timeout
        lifetime = self._lifetime()
        attempt = partial(
            self._run_publish, channel, raw, token, lifetime, report, ckey
        )
        text = reply_text(
            retry_publish(attempt, repr(channel), self.where, self.publish_timeout)
        )
        if report is None:
            return text
        return text, self._delivery(channel, report, deadline)

    def publish_many(self, events: list[tuple[str, Any, str | None]]) -> list[str]:
        """Publish ``(channel, data, event)`` items in order, in one round trip.

        For producers of many small events (runs' tokens): one pipeline of
        the publish script instead of one wait for Redis per event (see
        redis_publish.py). A Cluster publishes them one by one.
        """
        if self.hash_tags:
            return super().publish_many(events)
        encoded = [(c, self._encode(c, data, event)) for c, data, event in events]
        lifetime = self._lifetime()
        return publish_pipelined(self, encoded, lifetime) if encoded else []

    def _run_publish(
        self,
        channel: str,
        raw: bytes,
        token: bytes,
        lifetime: int,
        report: bytes | None = None,
        ckey: str | None = None,
        client: Any = None,
    ) -> Any:
        """One attempt of a publish (the script; ``token`` makes it idempotent)."""
        keys = [self._stream_key(channel), token]
        history = self.history_of.get(channel, self.history)
        args: list[bytes | int] = [history, raw, lifetime]
        args.append(self._keys.notify(channel))
        args.append(channel.encode())
        extra: list[bytes | int] = [] if report is None else [b"d", report]
        if ckey is None and self.history_ttl is None:
            return self._call_publish(self._publish, keys, args + extra, client)
        keys += keyed_keys(self._keys, channel)
        args += [(ckey or "").encode(), ttl_ms(self.history_ttl), *extra]
        return self._call_publish(self._publish_keyed, keys, args, client)

    def _call_publish(
        self, script: Any, keys: list[bytes], args: list[Any], client: Any = None
    ) -> Any:
        """Run a publish script (on ``client``, a pipeline; the Cluster routes)."""
        return script(keys=keys, args=args, client=client)

    def _delivery(self, channel: str, report: bytes, deadline: float) -> int:
        """Streams that processes report ``report``'s event was handed to."""
        store, timeout = self._members_redis(), deadline - time.monotonic()
        try:
            expected = partial(store.reporters, channel)
            return wait_delivery(self._command_client(), report, expected, timeout)
        except UNAVAILABLE:
            return 0  # published; the count is a lower bound (see the docs)

    def _command_client(self) -> Any:
        """The client that runs one command on a key (Cluster: routed)."""
        return self._client

    # -- subscribing ---------------------------------------------------------
    def _subscribe(
        self, writer: SSEWriter, channels: tuple[str, ...], *, snapshot: bool = False
    ) -> None:
        stream = stream_of(writer)
        subscription = Subscription(stream, channels, snapshot=snapshot)
        reader = self._reader
        for channel in channels:
            reader.subscribers.setdefault(channel, set()).add(subscription)
        stream.on_close(lambda _: self._unsubscribe(subscription))
        last_event_id = writer.last_event_id
        requested = requested_positions(last_event_id, len(channels))
        states = self._states_while_open(subscription, requested)
        if states is None:
            return
        gaps: list[tuple[str, Key, Key]] = []
        for channel, state in zip(channels, states, strict=True):
            known = reader.positions.get(channel)
            if known is None:
                reader.follow(channel, state.last)
            elif state.last < known:
                # The reader started this channel from another stream's later
                # snapshot: what lies between reaches this stream from history.
                gaps.append((channel, state.last, known))
        if gaps and subscription.pending is not None:
            try:
                subscription.pending[:0] = self._read_gaps(gaps)
            except UNAVAILABLE:
                STATS.broker_errors += 1
                stream.abort(CloseReason.BROKER_LOST, "Redis went away meanwhile")
                return
        subscription.start(last_event_id, requested, states)
        reader.ensure_running()

    def _states_while_open(
        self, subscription: Subscription, requested: list[Key | None] | None
    ) -> list[ChannelState] | None:
        """Each channel's state; while Redis is away, wait (the stream is open)."""
        delay = BACKOFF_FIRST
        while not subscription.stream.closed:
            try:
                states = self._read_states(
                    subscription.channels, requested, subscription.snapshot
                )
                self._waiting = False
                return states
            except UNAVAILABLE as exc:
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
        self,
        channels: tuple[str, ...],
        requested: list[Key | None] | None,
        snapshot: bool = False,
    ) -> list[ChannelState]:
        """Each channel's newest id and, where ``requested`` is resumable, replay.

        With ``snapshot``, also each channel's newest event per key.
        """
        pipe = self._client.pipeline(transaction=False)
        ttl = ttl_ms(self.history_ttl)
        for i, channel in enumerate(channels):
            after = requested[i] if requested is not None else None
            args = ["" if after is None else format_id(after), "1" if snapshot else ""]
            keys = [self._stream_key(channel), keyed_keys(self._keys, channel)[0]]
            self._state(keys=keys, args=[*args, ttl], client=pipe)
        replies = pipe.execute()
        return [
            channel_state(channel, reply)
            for channel, reply in zip(channels, replies, strict=True)
        ]

    def _read_gaps(self, gaps: list[tuple[str, Key, Key]]) -> list[Frame]:
        pipe = self._client.pipeline(transaction=False)
        for channel, after, upto in gaps:
            pipe.xrange(
                self._stream_key(channel), f"({format_id(after)}", format_id(upto)
            )
        frames = []
        for (channel, _, _), entries in zip(gaps, pipe.execute(), strict=True):
            frames += [entry_frame(channel, eid, fields) for eid, fields in entries]
        return frames

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscribers_of = self._reader.subscribers
        for channel in subscription.channels:
            subscribers = subscribers_of.get(channel)
            if subscribers is None:
                continue
            subscribers.discard(subscription)
            if not subscribers:
                self._reader.forget(channel)

    def close(self) -> None:
        if self._presence_store is not None:
            self._presence_store.close()
        self._reader.close()
        self._client.close()
        self._pool.disconnect()
