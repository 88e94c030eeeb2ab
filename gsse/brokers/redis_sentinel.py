"""``redis+sentinel://``: a Redis primary that Sentinel watches and replaces.

Everything is :class:`~gsse.brokers.redis.RedisBroker`'s except where the
connections go: redis-py's :class:`redis.sentinel.Sentinel` asks the
Sentinels for the current primary each time a connection opens, and turns
an answer from a demoted primary (``READONLY``) into a connection error.
Sentinel itself disconnects every client of both servers during a failover.
So a failover looks to the broker exactly like a Redis restart: open
streams stay open, the listener reconnects (now to the new primary), and
each channel continues from its position, replayed, or gets a ``reset``
where the new primary never received what the old one had (replication is
asynchronous). ``publish`` retries meanwhile, for ``publish_timeout``.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.sentinel import Sentinel
from redis.sentinel import SentinelConnectionPool

from .redis import HEALTH_CHECK_SECONDS
from .redis import REPLY_TIMEOUT
from .redis import RedisBroker
from .redis_pool import MAX_CONNECTIONS
from .redis_pool import WAIT_SECONDS
from .redis_pool import BoundedPool
from .redis_pool import connection_options
from .redis_topology import parse_hosts


class BoundedSentinelPool(SentinelConnectionPool, BoundedPool):
    """:class:`BoundedPool` whose connections go to the current primary."""


class RedisSentinelBroker(RedisBroker):
    """A :class:`RedisBroker` on the primary that Sentinel names.

    :param url: ``redis+sentinel://[user:password@]host:port,host:port/<service>``
        (optionally ``/<db>`` after the service): the Sentinels' addresses
        (port 26379 when left out) and the name they monitor the primary
        under. The credentials are the primary's; the Sentinels are asked
        without a password.

    .. versionadded:: 0.2
    """

    def _connect(self, url: str) -> None:
        hosts = parse_hosts(url)
        if not 1 <= len(hosts.path) <= 2:
            raise ValueError(
                f"a redis+sentinel:// URL names the service after the hosts:"
                f" redis+sentinel://host:26379,host2:26379/mymaster; got {self.where!r}"
            )
        service = hosts.path[0]
        options: dict[str, Any] = connection_options()
        if hosts.username:
            options["username"] = hosts.username
        if hosts.password is not None:
            options["password"] = hosts.password
        if len(hosts.path) == 2:
            try:
                options["db"] = int(hosts.path[1])
            except ValueError:
                raise ValueError(
                    f"the database after the service must be a number: {self.where!r}"
                ) from None
        sentinel_options = {
            k: v for k, v in connection_options().items() if k.startswith("socket_")
        }
        sentinel_options["socket_timeout"] = REPLY_TIMEOUT
        self._sentinel = Sentinel(hosts.nodes, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
        self._client = self._sentinel.master_for(  # type: ignore[no-untyped-call]
            service,
            connection_pool_class=BoundedSentinelPool,
            max_connections=MAX_CONNECTIONS,
            timeout=WAIT_SECONDS,
            socket_timeout=REPLY_TIMEOUT,
            **options,
        )
        pool = self._client.connection_pool
        if not isinstance(pool, BoundedPool):  # pragma: no cover - redis-py changed
            raise TypeError(f"redis-py made a {type(pool).__name__}, not our pool")
        self._pool = pool
        listen_client: redis.Redis = self._sentinel.master_for(  # type: ignore[no-untyped-call]
            service,
            max_connections=1,
            socket_timeout=HEALTH_CHECK_SECONDS + REPLY_TIMEOUT,
            health_check_interval=HEALTH_CHECK_SECONDS,
            **options,
        )
        self._start(listen_client)

    def close(self) -> None:
        super().close()
        for sentinel in self._sentinel.sentinels:
            sentinel.close()
