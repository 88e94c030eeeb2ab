"""The reading side of a Redis Cluster broker: each shard on its own.

What :class:`~gsse.brokers.redis_reader.ChannelReader` does for one Redis,
per shard: a :class:`~gsse.brokers.redis_shard_listener.ShardListener` per
primary that serves a followed channel hears which channels got events, and
the reader greenlet ``XREAD``\\ s only those, one pipeline per primary,
all primaries at once (:meth:`ClusterNodes.run_node`). Redis Cluster
refuses a command naming keys of two slots, and one shard's trouble must not
hold up the others: a channel whose read fails is retried on its own, after
a backoff, and its primary is read apart until it answers again, while the
other channels go on.

A channel's life here: :meth:`follow` (or :meth:`ahead`) makes it wanted;
the reader looks up its primary and gives it to that primary's listener
(:class:`~gsse.brokers.redis_cluster_routes.Routes`); once
subscribed (``confirmed``), it is read from its position (a sweep, as after
any (re)subscribe), and, if it came back from a lost shard, first checked
against its history (continue, or ``reset``). A failover or a moved slot
sends the channel round that loop again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event as GeventEvent

from ..metrics import STATS
from .fanout import ChannelState
from .frames import Key
from .frames import format_id
from .redis_cluster_nodes import ClusterNodes
from .redis_cluster_routes import Routes
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import READ_COUNT
from .redis_reader import TICK
from .redis_reader import ChannelReader
from .redis_reader import entry_key
from .redis_shard_listener import ShardListener
from .redis_topology import KeyNames

logger = logging.getLogger(__name__)

#: Each channel's state, or the error its shard gave (``RedisClusterBroker``).
StateReplies = Callable[
    [tuple[str, ...], list[Key | None] | None], list[ChannelState | BaseException]
]


class ClusterChannelReader(ChannelReader):
    """Follows, for one broker in one process, the channels subscribed here."""

    def __init__(
        self,
        *,
        nodes: ClusterNodes,
        keys: KeyNames,
        listen_options: dict[str, Any],
        state_replies: StateReplies,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self._nodes = nodes
        self._keys = keys
        self._state_replies = state_replies
        self._routes = Routes(
            nodes=nodes, keys=keys, listen_options=listen_options, hooks=self
        )
        #: Channels to check against their history before reading on.
        self._check: dict[str, None] = {}
        #: Channels whose read (or check: True) failed: when to retry each.
        self._retry: dict[str, tuple[float, bool]] = {}
        #: The backoff of each primary whose reads fail.
        self._delay: dict[str, float] = {}
        #: The read in flight on each primary, and the channels waiting for it.
        self._reading: dict[str, gevent.Greenlet] = {}
        self._later: dict[str, dict[str, None]] = {}
        #: Channels whose shard was lost: not read until checked again.
        self._lost: set[str] = set()
        #: Streams about to read a channel's state, by channel (``ahead``).
        self._ahead: dict[str, int] = {}
        self._changed = GeventEvent()

    # -- what the broker calls -----------------------------------------------
    def ahead(self, channels: tuple[str, ...], timeout: float) -> None:
        """Start hearing ``channels``' announcements; wait (``timeout`` at
        most) until they are heard, so that a stream that reads a channel's
        state next misses no later event. Pair each call with :meth:`behind`.
        """
        for channel in channels:
            self._ahead[channel] = self._ahead.get(channel, 0) + 1
            self._routes.want(channel)
        self.ensure_running()
        self._wake.set()
        deadline = time.monotonic() + timeout
        while not self._closed and not self._routes.listening.issuperset(channels):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # go on: the sweep once they are heard covers the gap
            self._changed.wait(min(remaining, 1.0))

    def behind(self, channels: tuple[str, ...]) -> None:
        """The stream has read its state (or gave up): see :meth:`ahead`."""
        for channel in channels:
            self._ahead[channel] -= 1
            if not self._ahead[channel]:
                del self._ahead[channel]
                if channel not in self.positions:  # nobody follows it after all
                    self._routes.drop(channel)

    def follow(self, channel: str, position: Key) -> None:
        super().follow(channel, position)
        self._routes.want(channel)

    def forget(self, channel: str) -> None:
        super().forget(channel)
        if channel not in self._ahead:
            self._routes.drop(channel)
        for pending in (self._check, self._retry):
            pending.pop(channel, None)
        self._lost.discard(channel)

    def _tracked(self, channel: str) -> bool:
        return channel in self.positions or channel in self._ahead

    def ensure_running(self) -> None:
        if not self._greenlets or self._greenlets[0].dead:
            self._greenlets = [gevent.spawn(self._read_forever)]

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._routes.close()
        greenlets, self._greenlets = self._greenlets, []
        greenlets += self._reading.values()
        gevent.joinall(greenlets, timeout=5)
        for greenlet in greenlets:
            greenlet.kill(block=True, timeout=5)

    # -- what the shard listeners call (ReaderHooks) -------------------------
    def heard(self, channel: str) -> None:
        if channel in self.positions:
            self._dirty[channel] = None
            self._wake.set()

    def confirmed(self, channel: str, recover: bool) -> None:
        if not self._tracked(channel):
            return
        self._routes.confirmed(channel)
        self._changed.set()
        self._changed = GeventEvent()
        if channel not in self.positions:
            return
        if recover or channel in self._lost:
            self._check[channel] = None
        self._dirty[channel] = None  # the sweep: what came before we listened
        self._wake.set()

    def handed_back(
        self, listener: ShardListener, channels: dict[str, bool], exc: BaseException
    ) -> None:
        channels = {c: r for c, r in channels.items() if self._tracked(c)}
        self._routes.handed_back(listener, channels)
        lost = 0
        for channel, recover in channels.items():
            if recover:
                lost += 1
                self._lost.add(channel)
        if lost:
            self._nodes.close_idle(0)  # idle connections to a shard that went away
            if not self.down:
                self.down = True
                self._down_since = time.monotonic()
                logger.warning(
                    "Redis Cluster node %s is unreachable (%s); the streams of"
                    " its %d channel(s) here stay open and resume once its"
                    " slots answer again (retrying with backoff)",
                    listener.name,
                    exc,
                    lost,
                )
        self._wake.set()

    # -- the reader greenlet -------------------------------------------------
    def _read_forever(self) -> None:
        housekeeping = time.monotonic()
        while not self._closed:
            now = time.monotonic()
            if now - housekeeping >= TICK:
                housekeeping = now
                self._nodes.close_idle()
            for channel in [c for c, (at, _) in self._retry.items() if at <= now]:
                self._dirty[channel] = None
                if self._retry.pop(channel)[1]:
                    self._check[channel] = None
            routing = self._routes.due(now)
            if not (self._dirty or self._check or routing):
                waits = [TICK]
                if self._routes.unrouted:
                    waits.append(self._routes.route_at - now)
                if self._retry:
                    waits.append(min(at for at, _ in self._retry.values()) - now)
                self._wake.wait(max(0.01, min(waits)))
                self._wake.clear()
                continue
            try:
                self._read_once()
            except Exception:
                STATS.broker_errors += 1
                logger.exception("reading channels from Redis at %s failed", self.where)
                gevent.sleep(BACKOFF_MAX)

    def _read_once(self) -> None:
        if self._routes.due(time.monotonic()):
            self._routes.route(self._tracked)
        if self._check:
            self._check_history()
        dirty, self._dirty = self._dirty, {}
        # A channel that lost its shard is read only once checked: reading
        # on first could step past an id the new primary never had.
        readable = [c for c in dirty if c in self.positions and c not in self._lost]
        try:
            self._read_channels(readable)
        except BaseException:
            self._retry_later(readable, BACKOFF_MAX, False)  # not lost: later
            raise

    def _retry_later(self, channels: list[str], delay: float, check: bool) -> None:
        at = time.monotonic() + delay
        for channel in channels:
            check_too = check or self._retry.get(channel, (0.0, False))[1]
            self._retry[channel] = (at, check_too)

    def _check_history(self) -> None:
        """After a lost shard: keep resumable positions, reset the lost ones."""
        channels = tuple(c for c in self._check if c in self.positions)
        self._check.clear()
        replies = self._state_replies(channels, [self.positions[c] for c in channels])
        lost = 0
        for channel, reply in zip(channels, replies, strict=True):
            if isinstance(reply, BaseException):
                STATS.broker_errors += 1
                self._retry_later([channel], BACKOFF_MAX, check=True)
                continue
            lost += self._reset_lost((channel,), [reply])
            self._lost.discard(channel)
        if self.down and not self._lost:
            self.down = False
            logger.info(
                "Redis Cluster at %s: every shard is back after %.1f s;"
                " streams resumed",
                self.where,
                time.monotonic() - self._down_since,
            )
        if lost:
            logger.warning(
                "Redis Cluster at %s lost the history of %d channel(s) in a"
                " failover; their streams got a 'reset' event",
                self.where,
                lost,
            )

    def _read_channels(self, channels: list[str]) -> None:
        """Read ``channels`` from their primaries, all at once.

        The primaries that answer are read together and their events fanned
        out in one batch, in id order, as one Redis's ``XREAD`` would. A
        primary whose last read failed is read apart, in a greenlet of its
        own, so that while it hangs (until its socket times out) it holds up
        only its own channels.
        """
        keys = [self._keys.key("stream", c) for c in channels]
        groups, errors = self._nodes.group(keys)
        if errors:
            STATS.broker_errors += len(errors)
            self._retry_later([channels[i] for i in errors], BACKOFF_FIRST, False)
        together = []
        for name, (node, indices) in groups.items():
            names = [channels[i] for i in indices]
            route_of = self._routes.route_of
            moved = [c for c in names if route_of.get(c, name) != name]
            if moved:
                self._reroute(moved)
                names = [c for c in names if c not in moved]
                if not names:
                    continue
            if name in self._reading:  # one read per primary at a time
                self._later.setdefault(name, {}).update(dict.fromkeys(names))
            elif name in self._delay:
                self._reading[name] = gevent.spawn(self._read_apart, name, node, names)
            else:
                together.append((name, node, names))
        reply = self._fetch_all(together)
        if reply and len(together) > 1:
            # The primaries were read at slightly different moments: a channel
            # found empty may have got an event since, published before one
            # found on another primary. Read those once more, so that this
            # batch keeps publish order across them as one XREAD would.
            read = {key for key, entries in reply if entries}
            again = []
            for name, node, names in together:
                empty = [
                    c for c in names if self._stream_prefix + c.encode() not in read
                ]
                if empty:
                    again.append((name, node, empty))
            reply += self._fetch_all(again)
        if reply:
            # Ids of two shards may tie (the same millisecond): then the order
            # the channels were announced in decides, as in one XREAD.
            rank = {self._stream_prefix + c.encode(): i for i, c in enumerate(channels)}
            reply.sort(key=lambda item: rank.get(item[0], 0))
            self._dispatch(reply)

    def _fetch_all(self, groups: list[tuple[str, Any, list[str]]]) -> list[Any]:
        """:meth:`_fetch` each primary's channels, all primaries at once."""
        if len(groups) <= 1:
            return self._fetch(*groups[0]) if groups else []
        fetches = [gevent.spawn(self._fetch, *args) for args in groups]
        gevent.joinall(fetches, raise_error=True)
        return [item for fetch in fetches for item in fetch.value]

    def _reroute(self, channels: list[str]) -> None:
        """The slot map moved ``channels`` away from their listener's primary
        (a failover its listener has not noticed, or resharding): follow them
        there, and check each against its history before reading on."""
        for channel in channels:
            self._routes.drop(channel, again=True)
            self._lost.add(channel)
        self._wake.set()

    def _read_apart(self, name: str, node: Any, channels: list[str]) -> None:
        try:
            reply = self._fetch(name, node, channels)
            if reply:
                self._dispatch(reply)
        except Exception:
            STATS.broker_errors += 1
            logger.exception("reading channels from %s failed", name)
            self._retry_later(channels, BACKOFF_MAX, False)
        finally:
            if self._reading.get(name) is gevent.getcurrent():
                del self._reading[name]
            self._dirty.update(self._later.pop(name, {}))
            self._wake.set()

    def _fetch(self, name: str, node: Any, channels: list[str]) -> list[Any]:
        """XREAD ``channels`` on one primary; what to fan out (failed: retried)."""
        channels = [c for c in channels if c in self.positions]
        calls = []
        for channel in channels:
            key = self._keys.key("stream", channel)
            at = format_id(self.positions[channel])
            calls.append(lambda p, k=key, a=at: p.xread({k: a}, count=READ_COUNT))
        failed = []
        reply: list[tuple[bytes, Any]] = []
        results = self._nodes.run_node(node, calls) if calls else []
        for channel, result in zip(channels, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(channel)
            elif result and channel in self.positions:
                reply += self._newer(channel, result)
        if failed:
            STATS.broker_errors += 1
            error = next(r for r in results if isinstance(r, BaseException))
            logger.debug("reading from %s failed: %s", name, error)
            delay = self._delay.get(name, BACKOFF_FIRST)
            self._delay[name] = min(delay * 2, BACKOFF_MAX)
            self._retry_later(failed, delay, False)
        else:
            self._delay.pop(name, None)
        return reply

    def _newer(self, channel: str, result: Any) -> list[tuple[bytes, Any]]:
        """XREAD's entries past the channel's position (a read that raced
        another, across a moved slot, must not deliver an event twice)."""
        position = self.positions[channel]
        items = result.items() if isinstance(result, dict) else result
        # Named as on one Redis: ``_dispatch`` reads the channel from it.
        prefixed = self._stream_prefix + channel.encode()
        return [
            (prefixed, [e for e in entries if entry_key(e[0]) > position])
            for _, entries in items
        ]
