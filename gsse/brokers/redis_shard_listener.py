"""Hears, on one Redis Cluster primary, which of its channels got events.

Why sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``, Redis 7) and not the
``<prefix>:notify`` channel of one Redis: in a Cluster, a classic
``PUBLISH`` is broadcast over the cluster bus to every node, so each event
would cost every shard some work and adding shards would not add capacity.
A sharded message stays on the shard that owns its channel's slot. Each
publish therefore announces itself on ``<prefix>:notify:{<channel>}`` (the
channel's own hash tag: the publish script may touch it, and it lives where
the Stream lives), and a process subscribes to exactly the channels it
follows, on the shards that serve them: one :class:`ShardListener` (one
greenlet, one connection) per primary it needs.

A listener never repairs anything itself. When its connection fails (the
shard is failing over, or restarting) or Redis moves one of its channels
elsewhere (resharding: Redis sends an unrequested ``sunsubscribe``), it
hands those channels back to the reader (:class:`ReaderHooks`), which
looks up their new primary and, for a lost connection, checks each one's
position against its history before reading on (continue, or ``reset``):
only that shard's channels pay for it.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from typing import Protocol

import gevent
import redis

from ..metrics import STATS
from .redis_cluster_nodes import TOPOLOGY_ERRORS
from .redis_cluster_nodes import UNAVAILABLE
from .redis_reader import PONG_WAIT
from .redis_reader import SILENCE
from .redis_topology import KeyNames

logger = logging.getLogger(__name__)

#: Seconds a listener waits for a message before it sends queued
#: (un)subscriptions: the most a new channel's first events may wait.
LISTEN_WAIT = 0.1


class ReaderHooks(Protocol):
    """What a listener tells the reader (redis_cluster_reader.py)."""

    def heard(self, channel: str) -> None:
        """``channel`` got an event (it may have more after our position)."""

    def confirmed(self, channel: str, recover: bool) -> None:
        """From now on no event of ``channel`` goes unheard."""

    def handed_back(
        self, listener: ShardListener, channels: dict[str, bool], exc: BaseException
    ) -> None:
        """These channels need a (new) primary; ``True``: check their history."""


class ShardListener:
    """One connection to one primary, subscribed to the channels it serves."""

    def __init__(
        self,
        name: str,
        address: tuple[str, int],
        *,
        keys: KeyNames,
        options: dict[str, Any],
        hooks: ReaderHooks,
    ) -> None:
        self.name = name
        self._address = address
        self._keys = keys
        self._options = options
        self._hooks = hooks
        #: Channels to be subscribed here, and whether each must be checked
        #: against its history once subscribed (it lost its shard before).
        self.wanted: dict[str, bool] = {}
        self._to_subscribe: dict[str, None] = {}
        self._to_unsubscribe: dict[str, None] = {}
        self._names: dict[bytes, str] = {}
        self.dead = False
        self._closed = False
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def add(self, channel: str, recover: bool) -> None:
        self.wanted[channel] = recover or self.wanted.get(channel, False)
        self._to_unsubscribe.pop(channel, None)
        self._to_subscribe[channel] = None

    def remove(self, channel: str) -> None:
        if self.wanted.pop(channel, None) is not None:
            self._to_subscribe.pop(channel, None)
            self._to_unsubscribe[channel] = None

    def close(self) -> None:
        self._closed = True
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.join(timeout=LISTEN_WAIT + 5)
            greenlet.kill(block=True, timeout=5)

    def _run(self) -> None:
        host, port = self._address
        client = redis.Redis(host=host, port=port, **self._options)
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        handed_back = False
        try:
            self._listen(pubsub)
        except (*UNAVAILABLE, *TOPOLOGY_ERRORS) as exc:
            STATS.broker_errors += 1
            # A moved slot keeps its data: only a lost connection may have
            # lost events, so only then is the history checked.
            lost = not isinstance(exc, TOPOLOGY_ERRORS)
            self._hand_back(lost, exc)
            handed_back = True
        except Exception as exc:
            STATS.broker_errors += 1
            logger.exception("listening to Redis Cluster node %s failed", self.name)
            self._hand_back(True, exc)
            handed_back = True
        finally:
            self.dead = True
            pubsub.close()
            client.close()
            if not handed_back and self.wanted and not self._closed:
                self._hand_back(False, redis.ConnectionError("listener stopped"))

    def _hand_back(self, lost: bool, exc: BaseException) -> None:
        self.dead = True
        channels = {c: recover or lost for c, recover in self.wanted.items()}
        self.wanted.clear()
        self._hooks.handed_back(self, channels, exc)

    def _listen(self, pubsub: Any) -> None:
        heard = time.monotonic()
        pinged = False
        while not self._closed:
            self._send_changes(pubsub)
            if not self.wanted and not self._names:
                return  # nothing left to hear here
            message = pubsub.get_message(timeout=LISTEN_WAIT)
            now = time.monotonic()
            if message is not None:
                heard, pinged = now, False
            while message is not None:
                self._handle(message)
                message = pubsub.get_message(timeout=0)
            # A primary that stopped answering without closing the connection
            # (a frozen process, a partition) would leave its channels deaf.
            if not pinged and now - heard > SILENCE and self._names:
                pubsub.ping()
                pinged = True
            elif pinged and now - heard > SILENCE + PONG_WAIT:
                raise redis.TimeoutError(
                    f"no answer to PING in {PONG_WAIT:g} s after {SILENCE:g} s of"
                    " silence"
                )

    def _send_changes(self, pubsub: Any) -> None:
        """(Un)subscribe what changed since the last look (one command each:
        Redis refuses one ``SSUBSCRIBE`` naming channels of two slots)."""
        while self._to_unsubscribe:
            channel = next(iter(self._to_unsubscribe))
            del self._to_unsubscribe[channel]
            pubsub.sunsubscribe(self._keys.notify(channel))
        while self._to_subscribe:
            channel = next(iter(self._to_subscribe))
            del self._to_subscribe[channel]
            name = self._keys.notify(channel)
            self._names[name] = channel
            pubsub.ssubscribe(name)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = self._names.get(bytes(message["channel"]))
        if channel is None:
            return
        if kind == "smessage":
            if channel in self.wanted:
                self._hooks.heard(channel)
        elif kind == "ssubscribe":
            if channel in self.wanted:
                recover, self.wanted[channel] = self.wanted[channel], False
                self._hooks.confirmed(channel, recover)
        elif kind == "sunsubscribe":
            if channel in self.wanted and channel not in self._to_subscribe:
                # Unrequested: the slot moved to another primary.
                recover = self.wanted.pop(channel)
                del self._names[bytes(message["channel"])]
                self._hooks.handed_back(
                    self, {channel: recover}, redis.ConnectionError("slot moved")
                )
            elif channel not in self.wanted:
                del self._names[bytes(message["channel"])]
