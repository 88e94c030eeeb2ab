"""A bounded pool of Redis connections that lets idle ones go.

redis-py's default pool opens a connection for every concurrent command and
keeps all of them for good: 500 streams subscribing at once left a process
with 100 idle Redis connections, and dead ones in ``CLOSE-WAIT`` after a
Redis restart. :class:`BoundedPool` is redis-py's ``BlockingConnectionPool``
(a caller waits for a free connection instead of opening one more) that
also closes connections idle for :data:`IDLE_SECONDS`, and all idle ones at
once when the broker learns that Redis went away.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: Connections a broker uses for commands (publish, replay, reads), at most.
#: Each command is one short round trip to a single-threaded Redis, so more
#: connections add no throughput; a few let a publish pass a slow replay.
MAX_CONNECTIONS = 4
#: Seconds a command waits for a free connection before it counts as failed.
WAIT_SECONDS = 10.0
#: Seconds after which an unused connection is closed.
IDLE_SECONDS = 30.0


def connection_options() -> dict[str, Any]:
    """What every connection of a broker is opened with (redis-py keywords)."""
    # No retries inside redis-py: the broker retries, and knows for how long.
    return {
        "socket_connect_timeout": 2.0,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
    }


class BoundedPool(redis.BlockingConnectionPool):
    """``BlockingConnectionPool`` that closes connections left idle."""

    def __init__(self, **kwargs: Any) -> None:
        self._idle_since: dict[int, float] = {}
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def release(self, connection: Any) -> None:
        self._idle_since[id(connection)] = time.monotonic()
        super().release(connection)  # type: ignore[no-untyped-call]

    def open_count(self) -> int:
        """Connections with an open socket (idle or in use)."""
        return sum(1 for c in self._connections if getattr(c, "_sock", None))

    def close_idle(self, idle_seconds: float | None = None) -> int:
        """Close the connections unused for ``idle_seconds``; return how many.

        Idle connections are taken out of the queue while they are looked
        at, so no other caller can be using one that is closed.
        """
        limit = IDLE_SECONDS if idle_seconds is None else idle_seconds
        now = time.monotonic()
        taken: list[Any] = []
        try:
            while True:
                taken.append(self.pool.get_nowait())
        except Empty:
            pass
        closed = 0
        try:
            for connection in taken:
                if connection is None or getattr(connection, "_sock", None) is None:
                    continue
                if now - self._idle_since.get(id(connection), 0.0) >= limit:
                    connection.disconnect()
                    closed += 1
        finally:
            for connection in reversed(taken):
                self.pool.put_nowait(connection)
        return closed
