"""``redis+cluster://``: channels spread over the shards of a Redis Cluster.

The same design as ``redis://`` (redis.py), shard by shard:

- Every key of a channel carries the channel as its hash tag
  (``gsse:stream:{news}``, see :class:`~gsse.brokers.redis_topology.KeyNames`),
  so a channel lives on one shard and the publish script, which touches the
  Stream, the token and the notify channel, never mixes slots. Different
  channels land on different shards: capacity grows with the shards.
- Publishing goes through redis-py's :class:`~redis.cluster.RedisCluster`,
  which follows ``MOVED``/``ASK`` and refreshes its slot map; the announce
  is a sharded ``SPUBLISH`` (why: redis_shard_listener.py).
- Reads (a stream's replay, the reader's rounds) send each primary one
  pipeline for its own channels (redis_cluster_nodes.py), and the reader
  listens to each shard on its own (redis_cluster_reader.py): a failover or
  a resharding costs only the channels of that shard a replay or a ``reset``.
"""

from __future__ import annotations

from typing import Any

import redis

from ..writer import SSEWriter
from .delivery_redis import DeliveryReports
from .fanout import ChannelState
from .frames import Frame
from .frames import Key
from .frames import format_id
from .lua import PUBLISH
from .lua_compact import PUBLISH_KEYED
from .lua_compact import STATE_KEYED
from .presence_cluster import ClusterPresence
from .presence_redis import RedisPresence
from .redis import RedisBroker
from .redis_cluster_nodes import TOPOLOGY_ERRORS
from .redis_cluster_nodes import ClusterNodes
from .redis_cluster_nodes import as_unavailable
from .redis_cluster_reader import ClusterChannelReader
from .redis_compact import channel_state
from .redis_compact import keyed_keys
from .redis_compact import ttl_ms
from .redis_connect import HEALTH_CHECK_SECONDS
from .redis_connect import REPLY_TIMEOUT
from .redis_reader import entry_frame
from .redis_topology import parse_hosts


def sharded(script: str) -> str:
    """``script`` with a sharded announce (``SPUBLISH``, Redis 7)."""
    changed = script.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
    if changed == script:  # pragma: no cover - lua*.py changed its PUBLISH call
        raise RuntimeError("a gsse publish script no longer announces with PUBLISH")
    return changed


#: The publish scripts with a sharded announce.
SHARDED_PUBLISH = sharded(PUBLISH)
SHARDED_PUBLISH_KEYED = sharded(PUBLISH_KEYED)


class RedisClusterBroker(RedisBroker):
    """A :class:`RedisBroker` on a Redis Cluster (Redis 7 or newer).

    :param url: ``redis+cluster://[user:password@]host:port,host:port``: any
        of the cluster's nodes (port 6379 when left out); the others are
        found from them.

    .. versionadded:: 0.2
    """

    hash_tags = True

    def _connect(self, url: str) -> None:
        hosts = parse_hosts(url)
        if hosts.path:
            raise ValueError(
                "a redis+cluster:// URL has no database or path (a cluster has"
                f" only database 0): {self.where!r}"
            )
        common = {"socket_connect_timeout": 2.0, "socket_keepalive": True}
        self._nodes = ClusterNodes(hosts, {**common, "socket_timeout": REPLY_TIMEOUT})
        self._listen_options: dict[str, Any] = {
            **common,
            "socket_timeout": HEALTH_CHECK_SECONDS + REPLY_TIMEOUT,
            "username": hosts.username,
            "password": hosts.password,
        }
        # The scripts' client only computes their SHA-1 (it never connects):
        # each call names the client that runs it.
        scripts = redis.Redis()
        self._publish = scripts.register_script(SHARDED_PUBLISH)
        self._publish_keyed = scripts.register_script(SHARDED_PUBLISH_KEYED)
        self._state = scripts.register_script(STATE_KEYED)
        self._reader = self._cluster_reader = ClusterChannelReader(
            nodes=self._nodes,
            keys=self._keys,
            listen_options=self._listen_options,
            state_replies=self._state_replies,
            where=self.where,
            client=scripts,
            pool=self._nodes,  # only its close_idle() is used
            listen_client=scripts,
            notify=b"",
            stream_prefix=self._stream_prefix,
            read_states=self._read_states,
        )
        self._reader.deliveries = DeliveryReports(
            self._nodes.client, lambda: self._members_redis().proc, self._lifetime()
        )

    def _make_presence(self) -> RedisPresence:
        return ClusterPresence(
            self._nodes,
            self._keys,
            self._listen_options,
            self._prefix,
            self.presence_ttl,
        )

    def _command_client(self) -> Any:
        return self._nodes.client()

    def _delivery(self, channel: str, report: bytes, deadline: float) -> int:
        try:
            return super()._delivery(channel, report, deadline)
        except TOPOLOGY_ERRORS:
            return 0  # published; the count is a lower bound (see the docs)

    def _subscribe(
        self, writer: SSEWriter, channels: tuple[str, ...], *, snapshot: bool = False
    ) -> None:
        # Each channel's announcements come on its own sharded channel: be
        # subscribed there before reading its state, as one Redis's single
        # notify channel always is, so the stream is live when it says so.
        try:
            self._cluster_reader.ahead(channels, REPLY_TIMEOUT)  # counts first
            super()._subscribe(writer, channels, snapshot=snapshot)
        finally:
            self._cluster_reader.behind(channels)

    def _call_publish(
        self, script: Any, keys: list[bytes], args: list[Any], client: Any = None
    ) -> Any:
        # Every key is the channel's (one slot): the cluster client routes it.
        try:
            return script(keys=keys, args=args, client=self._nodes.client())
        except redis.RedisError as exc:
            raise as_unavailable(exc) from None

    def _state_replies(
        self,
        channels: tuple[str, ...],
        requested: list[Key | None] | None,
        snapshot: bool = False,
    ) -> list[ChannelState | BaseException]:
        """Each channel's state, or the error its shard gave."""
        calls = []
        ttl = ttl_ms(self.history_ttl)
        for i, channel in enumerate(channels):
            after = requested[i] if requested is not None else None
            args = ["" if after is None else format_id(after), "1" if snapshot else ""]
            args.append(str(ttl))
            key = self._stream_key(channel)
            keys = [key, keyed_keys(self._keys, channel)[0]]
            calls.append(
                (key, lambda p, k=keys, a=args: self._state(keys=k, args=a, client=p))
            )
        states: list[ChannelState | BaseException] = []
        for channel, reply in zip(channels, self._nodes.run(calls), strict=True):
            if isinstance(reply, BaseException):
                states.append(reply)
                continue
            states.append(channel_state(channel, reply))
        return states

    def _read_states(
        self,
        channels: tuple[str, ...],
        requested: list[Key | None] | None,
        snapshot: bool = False,
    ) -> list[ChannelState]:
        states = []
        for reply in self._state_replies(channels, requested, snapshot):
            if isinstance(reply, BaseException):
                raise reply
            states.append(reply)
        return states

    def _read_gaps(self, gaps: list[tuple[str, Key, Key]]) -> list[Frame]:
        calls = []
        for channel, after, upto in gaps:
            key = self._stream_key(channel)
            start, end = f"({format_id(after)}", format_id(upto)
            calls.append((key, lambda p, k=key, a=start, b=end: p.xrange(k, a, b)))
        frames = []
        for (channel, _, _), reply in zip(gaps, self._nodes.run(calls), strict=True):
            if isinstance(reply, BaseException):
                raise reply
            frames += [entry_frame(channel, eid, fields) for eid, fields in reply]
        return frames

    def close(self) -> None:
        if self._presence_store is not None:
            self._presence_store.close()  # its goodbye needs the nodes
        self._reader.close()
        self._nodes.close()
