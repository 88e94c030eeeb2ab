"""``join``/``leave`` events across processes: one pub/sub listener each.

A process that has ``presence_events`` streams subscribes, on a connection
of its own, to ``<prefix>:presence``, where every process announces its
named streams' joins and leaves (presence_redis.py). The listener greenlet
hands each message to the watchers of its channel.

Nothing is missed and nothing told twice: once its subscription is
confirmed (and again after every reconnect) the listener reads each watched
channel's members (one script each) and brings every watcher in line with
them (:meth:`~gsse.brokers.presence.Watcher.sync`); a watcher drops what it
knows already. It does so in its own greenlet, between messages, so a
message handled before a read was published before it. The same re-read
runs every ``presence_ttl / 3`` seconds, which is how watchers learn that a
process died without a word (its entries are gone once it expired).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import redis

from ..metrics import STATS
from .presence import Watcher
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import UNAVAILABLE

logger = logging.getLogger(__name__)

#: Seconds the listener waits for a message before it looks at new watchers.
LISTEN_WAIT = 0.05

#: Reads a channel's live members (member -> JSON), in one round trip.
MemberReader = Callable[[str], dict[str, str]]


class EventListener:
    """Hands ``join``/``leave`` messages to this process's watchers."""

    def __init__(
        self,
        client: Any,
        channel: str,
        read_members: MemberReader,
        resync_every: float,
    ) -> None:
        self._client = client
        self._channel = channel.encode()
        self._read_members = read_members
        self._resync_every = resync_every
        self._watchers: dict[str, set[Watcher]] = {}
        #: Watched channels to read and sync (a dict as an ordered set).
        self._to_sync: dict[str, None] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._closed = False

    def watch(self, channel: str, watcher: Watcher) -> None:
        self._watchers.setdefault(channel, set()).add(watcher)
        self._to_sync[channel] = None
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._listen_forever)

    def unwatch(self, channel: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(channel)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[channel]

    def close(self) -> None:
        self._closed = True
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.join(timeout=LISTEN_WAIT + 5)
            greenlet.kill(block=True, timeout=5)
        self._client.connection_pool.disconnect()

    def _listen_forever(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                self._listen(pubsub)
            except UNAVAILABLE as exc:
                STATS.broker_errors += 1
                logger.debug("presence events from Redis: %s", exc)
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception:
                STATS.broker_errors += 1
                logger.exception("listening to presence events failed")
                gevent.sleep(BACKOFF_MAX)
                continue
            finally:
                pubsub.close()
            delay = BACKOFF_FIRST

    def _listen(self, pubsub: Any) -> None:
        pubsub.subscribe(self._channel)
        confirmed = False
        deadline = time.monotonic() + 10
        synced = time.monotonic()
        while not self._closed:
            message = pubsub.get_message(timeout=LISTEN_WAIT)
            while message is not None:
                if message["type"] == "subscribe":
                    # (Re)subscribed: whatever came meanwhile, read it.
                    confirmed = True
                    self._to_sync.update(dict.fromkeys(self._watchers))
                elif message["type"] == "message":
                    self._handle(message["data"])
                message = pubsub.get_message(timeout=0)
            now = time.monotonic()
            if not confirmed:
                if now > deadline:
                    raise redis.TimeoutError("Redis did not confirm SUBSCRIBE in 10 s")
                continue
            if now - synced >= self._resync_every:
                synced = now
                self._to_sync.update(dict.fromkeys(self._watchers))
            while self._to_sync:
                channel = next(iter(self._to_sync))
                if channel in self._watchers:
                    members = self._read_members(channel)
                    for watcher in tuple(self._watchers.get(channel, ())):
                        watcher.sync(members)
                del self._to_sync[channel]

    def _handle(self, data: bytes) -> None:
        try:
            kind, channel, member, info = json.loads(data)
            if kind not in ("join", "leave") or not isinstance(info, str):
                raise ValueError(kind)
        except (TypeError, ValueError):
            logger.warning("ignored a presence message not written by gsse: %r", data)
            return
        for watcher in tuple(self._watchers.get(channel, ())):
            watcher.tell(kind, member, info)
