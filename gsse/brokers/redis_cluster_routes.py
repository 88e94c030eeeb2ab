"""Which shard listener hears each channel of a Redis Cluster broker.

The routing table of :class:`~gsse.brokers.redis_cluster_reader.ClusterChannelReader`:
one :class:`~gsse.brokers.redis_shard_listener.ShardListener` per primary
that serves a channel this process needs, the channels waiting for their
primary (after a follow, a failover or a moved slot), and the channels whose
announcements are heard right now. Looking up a primary needs the slot map,
which may be unreachable or stale: the table retries with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..metrics import STATS
from .redis_cluster_nodes import UNAVAILABLE
from .redis_cluster_nodes import ClusterNodes
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_shard_listener import ReaderHooks
from .redis_shard_listener import ShardListener
from .redis_topology import KeyNames

logger = logging.getLogger(__name__)


class Routes:
    """The shard listeners of one reader, and which channel each one hears."""

    def __init__(
        self,
        *,
        nodes: ClusterNodes,
        keys: KeyNames,
        listen_options: dict[str, Any],
        hooks: ReaderHooks,
    ) -> None:
        self._nodes = nodes
        self._keys = keys
        self._listen_options = listen_options
        self._hooks = hooks
        self.listeners: dict[str, ShardListener] = {}
        #: The listener (primary's name) each routed channel was given to.
        self.route_of: dict[str, str] = {}
        #: Channels waiting for their primary; True: check their history.
        self.unrouted: dict[str, bool] = {}
        #: Channels whose announcements are heard now (SSUBSCRIBE confirmed).
        self.listening: set[str] = set()
        self.route_at = 0.0
        self._delay = BACKOFF_FIRST

    def due(self, now: float) -> bool:
        return bool(self.unrouted) and now >= self.route_at

    def want(self, channel: str) -> None:
        """Hear ``channel`` (unless it is routed already)."""
        if channel not in self.route_of:
            self.unrouted.setdefault(channel, False)

    def drop(self, channel: str, *, again: bool | None = None) -> None:
        """Stop hearing ``channel``; ``again``: route it anew (True: and check)."""
        listener = self.listeners.get(self.route_of.pop(channel, ""))
        if listener is not None:
            listener.remove(channel)
        self.listening.discard(channel)
        if again is None:
            self.unrouted.pop(channel, None)
        else:
            self.unrouted[channel] = again or self.unrouted.get(channel, False)

    def confirmed(self, channel: str) -> None:
        self.listening.add(channel)
        self._delay = BACKOFF_FIRST

    def handed_back(self, listener: ShardListener, channels: dict[str, bool]) -> None:
        """``listener`` gave these channels back: route them again, later
        (the new slot map may take a moment to reach every node)."""
        if self.listeners.get(listener.name) is listener and listener.dead:
            del self.listeners[listener.name]
        for channel, recover in channels.items():
            if self.route_of.get(channel) == listener.name:
                del self.route_of[channel]
            self.listening.discard(channel)
            self.unrouted[channel] = recover or self.unrouted.get(channel, False)
        self._nodes.stale = True
        self._back_off()

    def route(self, tracked: Callable[[str], bool]) -> None:
        """Give each unrouted channel still ``tracked`` to its primary's listener."""
        try:
            for channel in list(self.unrouted):
                if not tracked(channel):
                    del self.unrouted[channel]
                    continue
                node = self._nodes.node_of(self._keys.notify(channel))
                listener = self.listeners.get(node.name)
                if listener is None or listener.dead:
                    listener = ShardListener(
                        node.name,
                        (node.host, int(node.port)),
                        keys=self._keys,
                        options=self._listen_options,
                        hooks=self._hooks,
                    )
                    self.listeners[node.name] = listener
                    listener.start()
                listener.add(channel, self.unrouted.pop(channel))
                self.route_of[channel] = node.name
        except UNAVAILABLE as exc:
            STATS.broker_errors += 1
            logger.debug("Redis Cluster has no slot map yet: %s", exc)
            self._back_off()

    def _back_off(self) -> None:
        self.route_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, BACKOFF_MAX)

    def close(self) -> None:
        for listener in list(self.listeners.values()):
            listener.close()
        self.listeners.clear()
