"""Presence on a Redis Cluster: each channel's presence in its own slot.

The same writer and reader as on one Redis (presence_redis.py), with the
keys and scripts of presence_lua.py's Cluster part: a channel's counts,
liveness and members are three hashes hash-tagged with the channel
(:class:`~gsse.brokers.redis_topology.KeyNames`), so every script names
keys of one slot only, in ``KEYS``. What it costs, compared with one Redis:

- ``presence()``/``subscribers()``: still one script, one round trip to the
  shard that serves the channel.
- The heartbeat: one process's liveness cannot be one key that all its
  channels' scripts read (it would be in another slot), so each channel
  holds ``<process> -> expiry``, and every heartbeat (each
  ``presence_ttl / 4`` seconds) renews it in every channel the process has
  streams on: O(channels of the process) per heartbeat, one pipeline per
  shard, where one Redis needs one ``SET``. A join or leave stays O(1).
- ``join``/``leave`` go out on a sharded pub/sub channel per channel
  (``SPUBLISH <p>:presence:{<channel>}``), which stays on its shard;
  a process listens, on each shard, to the channels it has watchers on.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from ..exceptions import BrokerUnavailable
from .presence_events import EventListener
from .presence_events_sharded import ShardedEventListener
from .presence_lua import BEAT
from .presence_lua import READ_TAGGED
from .presence_redis import RedisPresence
from .redis_cluster_nodes import Call
from .redis_cluster_nodes import ClusterNodes
from .redis_cluster_nodes import as_unavailable
from .redis_reader import UNAVAILABLE
from .redis_topology import KeyNames

logger = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Any) -> list[tuple[str, str]]:
    items = list(flat or ())
    return [(_text(k), _text(v)) for k, v in zip(items[::2], items[1::2], strict=True)]


class ClusterPresence(RedisPresence):
    """Presence of one broker in one process, shared through a Redis Cluster."""

    def __init__(
        self,
        nodes: ClusterNodes,
        keys: KeyNames,
        listen_options: dict[str, Any],
        prefix: str,
        ttl: float,
    ) -> None:
        self._nodes = nodes
        self._names = keys
        self._listen_options = listen_options
        # The scripts' client only computes their SHA-1 (it never connects):
        # each call names the client that runs it.
        super().__init__(redis.Redis(), None, prefix, ttl)
        self._beat = self._client.register_script(BEAT)
        self._read = self._client.register_script(READ_TAGGED)
        #: Channels whose liveness this process wrote (a missing one: swept).
        self._beaten: set[str] = set()
        self._beat_at = 0.0

    def _make_listener(self, listen_client: Any) -> EventListener:
        return ShardedEventListener(
            self._nodes,
            self._names,
            self._listen_options,
            self._read_members,
            self.ttl / 3,
        )

    def _hashes(self, channel: str) -> tuple[bytes, bytes, bytes]:
        """The channel's count, alive and members hashes (one slot)."""
        key = self._names.key
        return key("count", channel), key("alive", channel), key("members", channel)

    def count_key(self, channel: str) -> str:
        return self._names.key("count", channel).decode()

    # -- writing ---------------------------------------------------------------
    def _write(
        self, counts: dict[str, None], members: dict[tuple[str, str], None]
    ) -> bool:
        now = time.monotonic()
        if now - self._beat_at >= self.ttl / 4:
            # The heartbeat: renew this process's liveness in every channel.
            self._beat_at = now
            counts = counts | dict.fromkeys(self._local)
        proc = self.proc
        ttl_ms, calls = round(self.ttl * 1000), []
        beats: list[tuple[str, int]] = []
        for name in counts:
            local = self._local.get(name)
            n = local.count if local is not None else 0
            count, alive, _ = self._hashes(name)
            args = [proc, n, ttl_ms, self.key_ttl]
            calls.append((count, self._call(self._beat, [count, alive], args)))
            beats.append((name, n))
        written = dict(self._written)
        for name, member in members:
            local = self._local.get(name)
            info = local.named.get(member) if local is not None else None
            key = self._names.key("members", name)
            events = self._names.key("presence", name)
            if info is not None:
                calls.append((key, _hset(key, member, info)))
                calls.append((key, _expire(key, self.key_ttl)))
                if (name, member) not in written:
                    message = json.dumps(["join", name, member, info])
                    calls.append((key, _spublish(events, message)))
                written[(name, member)] = info
            elif (name, member) in written:
                message = json.dumps(
                    ["leave", name, member, written.pop((name, member))]
                )
                calls.append((key, _hdel(key, member)))
                calls.append((key, _spublish(events, message)))
        replies = self._nodes.run(calls) if calls else []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        self._written = written
        lost = False
        for (name, n), was_live in zip(beats, replies, strict=False):
            if n > 0:
                lost = lost or (not was_live and name in self._beaten)
                self._beaten.add(name)
            else:
                self._beaten.discard(name)
        return lost

    @staticmethod
    def _call(script: Any, keys: list[bytes], args: list[Any]) -> Call:
        return lambda pipe: script(keys=keys, args=args, client=pipe)

    # -- reading ---------------------------------------------------------------
    def _read_hashes(
        self, channel: str, members: bool
    ) -> tuple[dict[str, int], dict[str, str]]:
        """Live processes' counts and (``members``) named streams: one script."""
        try:
            live, entries = self._read(
                keys=list(self._hashes(channel)),
                args=["1" if members else "0"],
                client=self._nodes.client(),
            )
        except redis.RedisError as exc:
            raise as_unavailable(exc) from None
        counts = {proc: int(n) for proc, n in _pairs(live)}
        named = {
            member: info
            for member, info in _pairs(entries)
            if member.partition(":")[0] in counts
        }
        return counts, named

    def _read_members(self, channel: str) -> dict[str, str]:
        return self._read_hashes(channel, True)[1]

    def counts(self, channel: str) -> dict[str, int]:
        return self._read_hashes(channel, False)[0]

    def presence(self, channel: str) -> list[dict[str, Any]]:
        try:
            named = self._read_hashes(channel, True)[1]
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(f"reading presence from Redis: {exc}") from None
        return [json.loads(info) for info in named.values()]

    # -- goodbye -------------------------------------------------------------------
    def goodbye(self) -> None:
        if not self._written and not self._local and not self._pid:
            return
        proc, calls = self.proc, []
        for name in {name for name, _ in self._written} | set(self._local):
            count, alive, members = self._hashes(name)
            fields = [m for n, m in self._written if n == name]
            calls.append((count, _hdel(count, proc)))
            calls.append((alive, _hdel(alive, proc)))
            if fields:
                calls.append((members, _hdel(members, *fields)))
        try:
            self._nodes.run(calls)
        except Exception as exc:  # the cluster is away: the entries expire
            logger.debug("presence goodbye to Redis Cluster failed: %s", exc)
        self._written.clear()


def _hset(key: bytes, field: str, value: str) -> Call:
    return lambda pipe: pipe.hset(key, field, value)


def _expire(key: bytes, seconds: int) -> Call:
    return lambda pipe: pipe.expire(key, seconds)


def _hdel(key: bytes, *fields: str) -> Call:
    return lambda pipe: pipe.hdel(key, *fields)


def _spublish(channel: bytes, message: str) -> Call:
    return lambda pipe: pipe.spublish(channel, message)
