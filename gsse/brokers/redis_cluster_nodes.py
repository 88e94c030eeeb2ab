"""The nodes of a Redis Cluster, as a Redis broker talks to them.

redis-py's :class:`redis.cluster.RedisCluster` knows which primary serves
which slot and follows ``MOVED``/``ASK`` redirections; gsse uses it as is
for publishing. Reads are different: a stream of ten channels, or the
reader's round over every dirty channel, names keys of many slots, and one
slow or failing shard must not hold up the others' channels. So
:meth:`ClusterNodes.run` sends each node one plain pipeline with the
commands for the keys it serves, and hands back each command's reply or the
error *its* node gave, leaving the caller to retry only those.

The client is made on first use (``RedisCluster`` connects as it is made,
and an app may create its broker before the cluster is up), and every
error that means "the cluster is not answering right now" becomes a
``redis.ConnectionError``, which the broker already survives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import gevent
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster
from redis.exceptions import AskError
from redis.exceptions import ClusterError
from redis.exceptions import RedisClusterException
from redis.exceptions import TryAgainError
from redis.retry import Retry

from .redis_pool import MAX_CONNECTIONS
from .redis_pool import WAIT_SECONDS
from .redis_pool import BoundedPool
from .redis_topology import Hosts

#: Errors of a cluster that is failing over, resharding or not up yet.
#: ``AskError`` includes ``MovedError``; ``ClusterError``, ``ClusterDownError``.
TOPOLOGY_ERRORS = (AskError, ClusterError, RedisClusterException, TryAgainError)
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)

#: Adds one command to a node's pipeline.
Call = Callable[[redis.client.Pipeline], object]


def as_unavailable(exc: BaseException) -> BaseException:
    """``exc`` as the broker's "not answering" error when it is a topology one."""
    if isinstance(exc, TOPOLOGY_ERRORS):
        error = redis.ConnectionError(f"Redis Cluster: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    return exc


class ClusterNodes:
    """A lazily made ``RedisCluster`` and one pipeline per node for reads."""

    def __init__(self, hosts: Hosts, options: dict[str, Any]) -> None:
        self._hosts = hosts
        self._options = options
        self._client: RedisCluster | None = None
        # One maker at a time: a thousand streams subscribing at once must
        # not each build (and connect) a RedisCluster of their own.
        self._making = threading.Lock()
        #: A reply said the slot map changed: refresh it before the next use.
        self.stale = False

    def client(self) -> RedisCluster:
        """The ``RedisCluster`` (made now if needed; its map fresh if stale)."""
        client = self._client
        if client is not None and not self.stale:
            return client
        with self._making:
            try:
                if self._client is None:
                    self._client = self._make()
                elif self.stale:
                    self.stale = False
                    self._client.nodes_manager.initialize()
                return self._client
            except (*UNAVAILABLE, *TOPOLOGY_ERRORS) as exc:
                self.stale = self._client is not None
                raise as_unavailable(exc) from None

    def _make(self) -> RedisCluster:
        (host, port), *others = self._hosts.nodes
        # A URL makes redis-py build each node's pool with our pool class:
        # bounded, and closing idle connections (redis_pool.py).
        return RedisCluster(
            url=f"redis://{host}:{port}",
            startup_nodes=[ClusterNode(h, p) for h, p in others],  # type: ignore[no-untyped-call]
            username=self._hosts.username,
            password=self._hosts.password,
            retry=Retry(NoBackoff(), 1),
            connection_pool_class=BoundedPool,
            max_connections=MAX_CONNECTIONS,
            timeout=WAIT_SECONDS,
            **self._options,
        )

    def node_of(self, key: bytes) -> ClusterNode:
        """The primary serving ``key``'s slot, as far as the client knows."""
        try:
            node: ClusterNode = self.client().get_node_from_key(key)  # type: ignore[no-untyped-call]
        except TOPOLOGY_ERRORS as exc:
            self.stale = True
            raise as_unavailable(exc) from None
        return node

    def group(
        self, keys: Sequence[bytes]
    ) -> tuple[dict[str, tuple[ClusterNode, list[int]]], dict[int, BaseException]]:
        """The indices of ``keys`` by the primary serving each, and the errors.

        Makes the client once for all (that may wait for a connect timeout).
        """
        try:
            cluster = self.client()
        except UNAVAILABLE as exc:
            return {}, dict.fromkeys(range(len(keys)), exc)
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        errors: dict[int, BaseException] = {}
        for i, key in enumerate(keys):
            try:
                node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
            except TOPOLOGY_ERRORS as exc:
                self.stale = True
                errors[i] = as_unavailable(exc)
                continue
            groups.setdefault(node.name, (node, []))[1].append(i)
        return groups, errors

    def run_node(self, node: ClusterNode, calls: Sequence[Call]) -> list[Any]:
        """One pipeline of ``calls`` on ``node``: each reply, or its error."""
        try:
            client = self.client().get_redis_connection(node)
            pipe = client.pipeline(transaction=False)
            for call in calls:
                call(pipe)
            replies = pipe.execute(raise_on_error=False)
        except (*UNAVAILABLE, *TOPOLOGY_ERRORS) as exc:
            replies = [exc] * len(calls)
        results = []
        for reply in replies:
            if isinstance(reply, BaseException):
                self.stale = True
                reply = as_unavailable(reply)
            results.append(reply)
        return results

    def run(self, calls: Sequence[tuple[bytes, Call]]) -> list[Any]:
        """Each call's reply, or the exception its node gave (never raised).

        ``calls`` are (key, add the command to a pipeline) pairs; the calls
        for one node share one pipeline, and the nodes are asked at once
        (one greenlet each), so a slow node costs the others nothing more.
        """
        groups, errors = self.group([key for key, _ in calls])
        results: list[Any] = [errors.get(i) for i in range(len(calls))]

        def ask(node: ClusterNode, indices: list[int]) -> None:
            replies = self.run_node(node, [calls[i][1] for i in indices])
            for i, reply in zip(indices, replies, strict=True):
                results[i] = reply

        if len(groups) == 1:
            ask(*next(iter(groups.values())))
        else:
            greenlets = [gevent.spawn(ask, *group) for group in groups.values()]
            gevent.joinall(greenlets, raise_error=True)
        return results

    def pools(self) -> list[BoundedPool]:
        """The connection pools of the nodes known now."""
        if self._client is None:
            return []
        found = []
        for node in self._client.get_nodes():  # type: ignore[no-untyped-call]
            client = node.redis_connection
            if client is not None and isinstance(client.connection_pool, BoundedPool):
                found.append(client.connection_pool)
        return found

    def close_idle(self, idle_seconds: float | None = None) -> int:
        """Close every node's idle connections (see :class:`BoundedPool`)."""
        return sum(pool.close_idle(idle_seconds) for pool in self.pools())

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
