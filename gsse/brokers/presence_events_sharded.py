"""``join``/``leave`` events in a Redis Cluster: sharded pub/sub per channel.

On one Redis every process announces on one ``<prefix>:presence`` channel
(presence_events.py). In a Cluster a classic ``PUBLISH`` is copied to every
node, so each announcement goes out with ``SPUBLISH`` on
``<prefix>:presence:{<channel>}``, which stays on the channel's shard, and a
process ``SSUBSCRIBE``\\ s, on the primary that serves each, to the channels
it has watchers on: one connection per such primary.

Otherwise as on one Redis: a channel's watchers are synced with its members
once its subscription is confirmed, again every ``presence_ttl / 3``
seconds, and after any failure the listener starts over (a failover, a
moved slot) and syncs again, so nothing is missed and nothing told twice.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import redis

from .presence_events import LISTEN_WAIT
from .presence_events import EventListener
from .presence_events import MemberReader
from .redis_cluster_nodes import TOPOLOGY_ERRORS
from .redis_cluster_nodes import ClusterNodes
from .redis_cluster_nodes import as_unavailable
from .redis_topology import KeyNames

#: Seconds a watched channel's ``SSUBSCRIBE`` may wait to be confirmed
#: before the listener starts over.
CONFIRM_WAIT = 10.0


class ShardSubscribers:
    """One pub/sub connection per primary, subscribed to its channels."""

    def __init__(self, nodes: ClusterNodes, keys: KeyNames, options: dict[str, Any]):
        self._nodes = nodes
        self._keys = keys
        self._options = options
        self._pubsubs: dict[str, tuple[redis.Redis, Any]] = {}
        #: Subscribed channels, by the pub/sub channel that announces them.
        self.channels: dict[str, bytes] = {}
        self.names: dict[bytes, str] = {}
        self._node_of: dict[str, str] = {}
        self._leaving: set[bytes] = set()

    def add(self, channel: str) -> None:
        name = self._keys.key("presence", channel)
        node = self._nodes.node_of(name)
        if node.name not in self._pubsubs:
            client = redis.Redis(host=node.host, port=node.port, **self._options)
            self._pubsubs[node.name] = (client, client.pubsub())  # type: ignore[no-untyped-call]
        self._pubsubs[node.name][1].ssubscribe(name)
        self.channels[channel], self.names[name] = name, channel
        self._node_of[channel] = node.name

    def remove(self, channel: str) -> None:
        name = self.channels.pop(channel)
        self._leaving.add(name)
        self._pubsubs[self._node_of.pop(channel)][1].sunsubscribe(name)

    def messages(self, timeout: float) -> list[dict[str, Any]]:
        """What came on any connection (waiting ``timeout`` when nothing)."""
        found = []
        for _, pubsub in list(self._pubsubs.values()):
            message = pubsub.get_message(timeout=0)
            while message is not None:
                found.append(message)
                message = pubsub.get_message(timeout=0)
        if not found:
            gevent.sleep(timeout)
        return found

    def unrequested(self, name: bytes) -> bool:
        """Whether an ``sunsubscribe`` of ``name`` came unasked (a moved slot)."""
        if name in self._leaving:
            self._leaving.discard(name)
            if self.names.get(name) not in self.channels:  # not wanted again
                self.names.pop(name, None)
            return False
        return True

    def close(self) -> None:
        pubsubs, self._pubsubs = self._pubsubs, {}
        for client, pubsub in pubsubs.values():
            pubsub.close()
            client.close()


class ShardedEventListener(EventListener):
    """Hands ``join``/``leave`` from a Redis Cluster to this process's watchers."""

    def __init__(
        self,
        nodes: ClusterNodes,
        keys: KeyNames,
        options: dict[str, Any],
        read_members: MemberReader,
        resync_every: float,
    ) -> None:
        super().__init__(None, "", read_members, resync_every)
        self._nodes = nodes
        self._keys = keys
        self._options = options

    def _pubsub(self) -> ShardSubscribers:
        return ShardSubscribers(self._nodes, self._keys, self._options)

    def _listen(self, pubsub: Any) -> None:
        try:
            self._listen_shards(pubsub)
        except TOPOLOGY_ERRORS as exc:
            self._nodes.stale = True
            raise as_unavailable(exc) from None

    def _listen_shards(self, subs: ShardSubscribers) -> None:
        asked: dict[str, float] = {}
        confirmed: set[str] = set()
        synced = time.monotonic()
        while not self._closed:
            for channel in [c for c in self._watchers if c not in subs.channels]:
                subs.add(channel)
                asked[channel] = time.monotonic()
            for channel in [c for c in subs.channels if c not in self._watchers]:
                subs.remove(channel)
                confirmed.discard(channel)
                asked.pop(channel, None)
            for message in subs.messages(LISTEN_WAIT):
                name = bytes(message["channel"])
                about = subs.names.get(name)
                kind = message["type"]
                if kind == "smessage":
                    self._handle(message["data"])
                elif kind == "ssubscribe" and about in subs.channels:
                    confirmed.add(about)
                    asked.pop(about, None)
                    self._to_sync[about] = None  # what came before: read it
                elif kind == "sunsubscribe" and subs.unrequested(name):
                    raise redis.ConnectionError(f"slot of {name!r} moved")
            now = time.monotonic()
            if any(now - at > CONFIRM_WAIT for at in asked.values()):
                raise redis.TimeoutError(
                    f"Redis Cluster did not confirm SSUBSCRIBE in {CONFIRM_WAIT:g} s"
                )
            if now - synced >= self._resync_every:
                synced = now
                self._to_sync.update(dict.fromkeys(confirmed))
            for channel in [c for c in self._to_sync if c not in subs.channels]:
                if channel not in self._watchers:
                    del self._to_sync[channel]
            waiting = {c: None for c in self._to_sync if c not in confirmed}
            for channel in waiting:
                del self._to_sync[channel]
            self._sync_due()
            self._to_sync.update(waiting)
