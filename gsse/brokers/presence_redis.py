"""Presence shared through Redis: every process's members, one heartbeat each.

Keys and the reading scripts are described in presence_lua.py. Here is the
writing side, one :class:`RedisPresence` per broker and process:

- A stream joining or leaving changes this process's state at once (O(1))
  and marks what changed; one writer greenlet sends every change marked
  since its last round trip in one pipeline (the state, not a log of
  operations: a stream that comes and goes in between costs nothing, and a
  Redis outage only delays the next write). Each write starts with the
  heartbeat, ``SET <p>:alive:<process> EX presence_ttl``; with nothing to
  write it runs every ``presence_ttl / 3`` seconds on its own.
- Every key expires: the count and member hashes of a channel live
  ``max(300, 10 * presence_ttl)`` seconds after they were last written, and
  a process writes all of its entries again every third of that.
- When the heartbeat finds its key gone (Redis restarted, or this process
  stalled past ``presence_ttl`` and a reader swept it), every entry of the
  process is written again.
- Named streams' joins and leaves are announced on the pub/sub channel
  ``<p>:presence``. Processes with ``presence_events`` streams listen to it
  (:class:`~gsse.brokers.presence_events.EventListener`); a leave nobody
  announced (a process that died) is found by their periodic re-read.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import weakref
from typing import Any

import gevent
import redis
from gevent.event import Event as GeventEvent

from ..exceptions import BrokerUnavailable
from ..metrics import STATS
from ..transport import Transport
from .presence import PresenceStore
from .presence import Watcher
from .presence import check_presence_ttl as check_presence_ttl
from .presence_events import EventListener
from .presence_lua import COUNTS
from .presence_lua import MEMBERS
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import UNAVAILABLE

logger = logging.getLogger(__name__)

#: Seconds a process's entries outlive it by default (``presence_ttl``).
PRESENCE_TTL = 30.0
#: The least lifetime of a channel's count and member hashes (seconds).
KEY_TTL = 300


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Local:
    """This process's streams on one channel."""

    __slots__ = ("count", "named")

    def __init__(self) -> None:
        self.count = 0
        self.named: dict[str, str] = {}


class RedisPresence(PresenceStore):
    """Presence of one broker in one process, shared through Redis."""

    def __init__(
        self, client: redis.Redis, listen_client: Any, prefix: str, ttl: float
    ) -> None:
        self._client = client
        self._prefix = prefix
        self.ttl = ttl
        self._members_script = client.register_script(MEMBERS)
        self._counts_script = client.register_script(COUNTS)
        self._pid = 0
        self._proc = ""
        self._local: dict[str, _Local] = {}
        #: Channels whose count, and (channel, member) pairs whose entry,
        #: changed since the last write (dicts as ordered sets).
        self._dirty_counts: dict[str, None] = {}
        self._dirty_members: dict[tuple[str, str], None] = {}
        #: Entries this process wrote to Redis, with their JSON.
        self._written: dict[tuple[str, str], str] = {}
        #: Seconds the count and member hashes live unless written again
        #: (every ``key_ttl / 3`` s while this process has streams there).
        self.key_ttl = max(KEY_TTL, round(10 * ttl))
        self._refreshed = time.monotonic()
        self._wake = GeventEvent()
        self._writer: gevent.Greenlet | None = None
        self._closed = False
        self.listener = EventListener(
            listen_client, f"{prefix}:presence", self._read_members, ttl / 3
        )
        atexit.register(_goodbye_at_exit, weakref.ref(self))

    # -- names -----------------------------------------------------------------
    @property
    def proc(self) -> str:
        """This process's id in Redis (a new one after a fork)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._proc = os.urandom(8).hex()
        return self._proc

    def _alive_prefix(self) -> str:
        return f"{self._prefix}:alive:"

    def _presence_prefix(self, channel: str) -> str:
        return f"{self._prefix}:presence:{channel}:"

    def count_key(self, channel: str) -> str:
        return f"{self._prefix}:count:{channel}"

    # -- joining and leaving (in the event loop) -------------------------------
    def join(
        self,
        transport: Transport,
        channels: tuple[str, ...],
        info: str | None,
        events: bool,
    ) -> None:
        if transport.closed or self._closed:
            return
        member = f"{self.proc}:{transport.stream_id}"
        watcher = Watcher(transport) if events else None
        for name in channels:
            local = self._local.get(name)
            if local is None:
                local = self._local[name] = _Local()
            local.count += 1
            self._dirty_counts[name] = None
            if info is not None:
                local.named[member] = info
                self._dirty_members[(name, member)] = None
            if watcher is not None:
                self.listener.watch(name, watcher)
        transport.on_close(lambda _: self._leave(member, channels, watcher))
        self._start()

    def _leave(
        self, member: str, channels: tuple[str, ...], watcher: Watcher | None
    ) -> None:
        for name in channels:
            local = self._local.get(name)
            if local is None:
                continue
            local.count -= 1
            self._dirty_counts[name] = None
            if local.named.pop(member, None) is not None:
                self._dirty_members[(name, member)] = None
            if watcher is not None:
                self.listener.unwatch(name, watcher)
            if not local.count:
                del self._local[name]
        self._wake.set()

    def follows(self, channel: str) -> bool:
        """Whether this process has streams on ``channel``."""
        return channel in self._local

    # -- the writer greenlet ---------------------------------------------------
    def _start(self) -> None:
        self._wake.set()
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write_forever)

    def _write_forever(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closed:
            self._wake.wait(self.ttl / 3)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
            except UNAVAILABLE as exc:
                STATS.broker_errors += 1
                logger.debug("writing presence to Redis: %s", exc)
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                self._wake.set()
                continue
            except Exception:
                STATS.broker_errors += 1
                logger.exception("writing presence to Redis failed")
                gevent.sleep(BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST

    def flush(self) -> None:
        """One round trip: the heartbeat, then every marked change."""
        now = time.monotonic()
        if now - self._refreshed > self.key_ttl / 3:
            # Shared keys expire unless refreshed: write everything again.
            self._refreshed = now
            self._mark_all()
        counts, self._dirty_counts = self._dirty_counts, {}
        members, self._dirty_members = self._dirty_members, {}
        try:
            lost = self._write(counts, members)
        except BaseException:
            self._dirty_counts = counts | self._dirty_counts
            self._dirty_members = members | self._dirty_members
            raise
        if lost and (self._local or self._written):
            # Redis forgot this process: write everything it has again.
            self._written.clear()
            self._mark_all()
            self._wake.set()

    def _mark_all(self) -> None:
        self._dirty_counts.update(dict.fromkeys(self._local))
        for name, local in self._local.items():
            self._dirty_members.update(dict.fromkeys((name, m) for m in local.named))

    def _write(
        self, counts: dict[str, None], members: dict[tuple[str, str], None]
    ) -> bool:
        proc, events = self.proc, f"{self._prefix}:presence"
        alive = self._alive_prefix() + proc
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(alive)
        pipe.set(alive, b"1", ex=max(1, round(self.ttl)))
        for name in counts:
            local = self._local.get(name)
            if local is not None and local.count:
                pipe.hset(self.count_key(name), proc, local.count)
                pipe.expire(self.count_key(name), self.key_ttl)
            else:
                pipe.hdel(self.count_key(name), proc)
        written = dict(self._written)
        for name, member in members:
            local = self._local.get(name)
            info = local.named.get(member) if local is not None else None
            key = self._presence_prefix(name) + proc
            field = member.partition(":")[2]
            if info is not None:
                pipe.hset(key, field, info)
                pipe.expire(key, self.key_ttl)
                if (name, member) not in written:
                    pipe.publish(events, json.dumps(["join", name, member, info]))
                written[(name, member)] = info
            elif (name, member) in written:
                pipe.hdel(key, field)
                message = ["leave", name, member, written.pop((name, member))]
                pipe.publish(events, json.dumps(message))
        replies = pipe.execute()
        self._written = written
        return not replies[0]

    # -- reading (any greenlet, thread or plain script) ------------------------
    def _members_reply(self, channel: str) -> Any:
        """{process, {stream, json, ...}, ...}: the MEMBERS script's reply."""
        return self._members_script(
            keys=[self.count_key(channel)],
            args=[self._alive_prefix(), self._presence_prefix(channel)],
        )

    def _read_members(self, channel: str) -> dict[str, str]:
        reply = self._members_reply(channel)
        members = {}
        for proc, entries in zip(reply[::2], reply[1::2], strict=True):
            proc = _text(proc)
            for stream, info in zip(entries[::2], entries[1::2], strict=True):
                members[f"{proc}:{_text(stream)}"] = _text(info)
        return members

    def counts(self, channel: str) -> dict[str, int]:
        """Live processes with streams on ``channel``, and how many each has."""
        reply = self._counts_script(
            keys=[self.count_key(channel)],
            args=[self._alive_prefix(), self._presence_prefix(channel)],
        )
        return {_text(k): int(v) for k, v in zip(reply[::2], reply[1::2], strict=True)}

    def reporters(self, channel: str) -> set[str]:
        """Processes that report a counted publish to ``channel`` (one read)."""
        procs = {proc for proc, n in self.counts(channel).items() if n > 0}
        if self.follows(channel):  # even before its count reached Redis
            procs.add(self.proc)
        return procs

    def presence(self, channel: str) -> list[dict[str, Any]]:
        try:
            reply = self._members_reply(channel)
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(f"reading presence from Redis: {exc}") from None
        loads = json.loads
        return [loads(info) for entries in reply[1::2] for info in entries[1::2]]

    def subscribers(self, channel: str) -> int:
        try:
            return sum(self.counts(channel).values())
        except UNAVAILABLE as exc:
            raise BrokerUnavailable(f"reading subscribers from Redis: {exc}") from None

    # -- goodbye -------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self.listener.close()
        self.goodbye()

    def goodbye(self) -> None:
        """Remove this process's entries (best effort: else they expire)."""
        if not self._written and not self._local and not self._pid:
            return
        proc = self.proc
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(self._alive_prefix() + proc)
            for name in {name for name, _ in self._written} | set(self._local):
                pipe.hdel(self.count_key(name), proc)
                pipe.delete(self._presence_prefix(name) + proc)
            pipe.execute()
        except Exception as exc:  # Redis away: the entries expire instead
            logger.debug("presence goodbye to Redis failed: %s", exc)
        self._written.clear()


def _goodbye_at_exit(ref: weakref.ref[RedisPresence]) -> None:
    store = ref()
    if store is not None and not store._closed and store._pid == os.getpid():
        store.goodbye()
