"""How a ``redis://`` broker's connections are made (one Redis, by URL).

Kept apart from the broker (redis.py) so that the topologies differ only
here: Sentinel (redis_sentinel.py) and Cluster (redis_cluster.py) make
theirs from many hosts, and everything after connecting is shared.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .redis_pool import MAX_CONNECTIONS
from .redis_pool import WAIT_SECONDS
from .redis_pool import BoundedPool

#: Seconds a publish keeps retrying while Redis is unreachable.
PUBLISH_TIMEOUT = 5.0
#: Seconds a command may wait for its reply.
REPLY_TIMEOUT = 5.0
#: Seconds of silence after which a pub/sub connection is checked (PING).
HEALTH_CHECK_SECONDS = 10


def connection_options() -> dict[str, Any]:
    """What every connection of a broker is opened with (redis-py keywords)."""
    # No retries inside redis-py: the broker retries, and knows for how long.
    return {
        "socket_connect_timeout": 2.0,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
    }


def listen_options() -> dict[str, Any]:
    """A pub/sub connection's options: it waits longer, and PINGs when idle."""
    return {
        "max_connections": 1,
        "socket_timeout": HEALTH_CHECK_SECONDS + REPLY_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        **connection_options(),
    }


def command_pool(url: str) -> BoundedPool:
    """The bounded pool every command of a broker borrows from (not yet open)."""
    return BoundedPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=WAIT_SECONDS,
        socket_timeout=REPLY_TIMEOUT,
        **connection_options(),
    )


def listen_client(url: str) -> redis.Redis:
    """A client of one connection, for one pub/sub listener (not yet open)."""
    return redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(url, **listen_options())
    )
