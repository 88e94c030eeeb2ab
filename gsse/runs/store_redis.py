"""``redis://`` runs: their metadata in Redis, shared by every process.

Keys, beside the broker's Stream of the run's events:

- ``<prefix>:run:{<id>}``, a hash: ``status``, ``started``, ``ended``,
  ``count``, ``origin``, ``end_id``, ``cancel``. While the run goes on, the
  owner's heartbeat keeps it (and the Stream) alive for ``lease + ttl``
  seconds; once it ends, both expire ``ttl`` seconds later.
- ``<prefix>:run:{<id>}:lease``, which the owning process renews every
  heartbeat (:data:`~gsse.runs.runs.HEARTBEAT`) with a ``lease`` TTL: a
  process that dies (SIGKILL, a lost machine) stops renewing it, and any
  process that follows the run sees it gone and ends the run as
  ``interrupted``.

A final status is set by one script that only acts on a ``running`` run,
so of the owner finishing, a shutdown, and any number of processes that
noticed the lost lease, exactly one wins and publishes the ``end`` event.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from ..brokers.redis import RedisBroker
from ..brokers.redis_reader import UNAVAILABLE
from ..exceptions import BrokerUnavailable
from .store import RUNNING
from .store import RunInfo
from .store import channel_of

#: KEYS: hash, lease; ARGV: status, ended, count, orphan ('1': only if the
#: lease is gone). Returns 1 if this call ended the run.
FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'ended', ARGV[2])
if ARGV[4] ~= '1' then redis.call('HSET', KEYS[1], 'count', ARGV[3]) end
redis.call('DEL', KEYS[2])
return 1
"""

#: KEYS: hash. Returns 1 if the run was running (and is now asked to stop).
CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
return 1
"""


F = TypeVar("F", bound=Callable[..., Any])


def _redis_call(method: F) -> F:
    """Turn Redis being away into :class:`gsse.BrokerUnavailable`, as publish does."""

    @functools.wraps(method)
    def call(self: RedisRunStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(
                f"Redis at {self._broker.where} did not answer ({exc})"
            ) from None

    return call  # type: ignore[return-value]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRunStore:
    """Runs' metadata in the Redis of a :class:`~gsse.brokers.redis.RedisBroker`.

    :param ttl: seconds a finished run is kept.
    :param lease: seconds the owner's lease lasts without a heartbeat.
    """

    def __init__(self, broker: RedisBroker, ttl: float, lease: float) -> None:
        self._broker = broker
        self._client = broker._client
        self._prefix = f"{broker._prefix}:run:"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._lease_ms = max(1, int(lease * 1000))
        self._finish = self._client.register_script(FINISH)
        self._cancel = self._client.register_script(CANCEL)

    # ``{id}`` is a Redis Cluster hash tag: both keys of a run share a slot,
    # as the scripts that touch both need.
    def _hash(self, run_id: str) -> str:
        return f"{self._prefix}{{{run_id}}}"

    def _lease(self, run_id: str) -> str:
        return f"{self._prefix}{{{run_id}}}:lease"

    def _stream(self, run_id: str) -> bytes:
        return self._broker._stream_key(channel_of(run_id))

    @_redis_call
    def create(self, run_id: str, origin: str, started: float) -> None:
        pipe = self._client.pipeline(transaction=True)
        key = self._hash(run_id)
        fields: dict[str, str | int] = {"status": RUNNING, "count": 0}
        fields.update(started=repr(started), origin=origin)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.pexpire(key, self._lease_ms + self._ttl_ms)
        pipe.pexpire(self._stream(run_id), self._lease_ms + self._ttl_ms)
        pipe.set(self._lease(run_id), 1, px=self._lease_ms)
        pipe.execute()

    @_redis_call
    def get(self, run_id: str) -> RunInfo | None:
        found = self._client.hgetall(self._hash(run_id))
        fields = {_text(k): _text(v) for k, v in found.items()}
        if "status" not in fields:
            return None
        ended = fields.get("ended")
        return RunInfo(
            status=fields["status"],
            started=float(fields.get("started", 0)),
            ended=float(ended) if ended else None,
            events=int(fields.get("count", 0)),
            origin=fields.get("origin", ""),
            end_id=fields.get("end_id") or None,
        )

    @_redis_call
    def finish(
        self, run_id: str, status: str, ended: float, count: int, *, orphan: bool
    ) -> bool:
        keys = [self._hash(run_id), self._lease(run_id)]
        args: list[str | int] = [status, repr(ended), count, "1" if orphan else "0"]
        return bool(self._finish(keys=keys, args=args))

    @_redis_call
    def ended(self, run_id: str, end_id: str, ttl: float) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._hash(run_id), "end_id", end_id)
        pipe.pexpire(self._hash(run_id), self._ttl_ms)
        pipe.pexpire(self._stream(run_id), self._ttl_ms)
        pipe.execute()

    @_redis_call
    def cancel(self, run_id: str) -> bool:
        return bool(self._cancel(keys=[self._hash(run_id)]))

    @_redis_call
    def heartbeat(self, counts: dict[str, int]) -> set[str]:
        if not counts:
            return set()
        keep = self._lease_ms + self._ttl_ms
        pipe = self._client.pipeline(transaction=False)
        run_ids = list(counts)
        for run_id in run_ids:
            key = self._hash(run_id)
            pipe.set(self._lease(run_id), 1, px=self._lease_ms)
            pipe.pexpire(key, keep)
            pipe.pexpire(self._stream(run_id), keep)
            pipe.hset(key, "count", counts[run_id])
            pipe.hget(key, "cancel")
        replies = pipe.execute()
        return {
            run_id
            for run_id, flag in zip(run_ids, replies[4::5], strict=True)
            if flag is not None
        }

    @_redis_call
    def orphans(self, run_ids: list[str]) -> list[str]:
        if not run_ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self._hash(run_id), "status")
            pipe.exists(self._lease(run_id))
        replies = pipe.execute()
        return [
            run_id
            for run_id, status, alive in zip(
                run_ids, replies[0::2], replies[1::2], strict=True
            )
            if status is not None and _text(status) == RUNNING and not alive
        ]
