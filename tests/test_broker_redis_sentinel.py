"""What only redis+sentinel:// does, on a real primary, replica and three
Sentinels started here: a failover of the primary (SIGKILL) is survived as a
Redis restart is, with exact replay of what the new primary has and a
``reset`` where it never got an event. (The shared channel contract runs on
Sentinel in tests/brokers/.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

import gsse
from gsse import Server
from gsse.brokers.redis_sentinel import RedisSentinelBroker
from tests.apps.broker_app import make_app
from tests.brokers.conftest import sub_path
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.redis_topology import SERVICE
from tests.redis_topology import SentinelServers
from tests.redis_topology import lose_next_writes
from tests.redis_topology import replicated
from tests.redis_topology import wait_for

Serve = Callable[..., Server]

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelServers]:
    servers = SentinelServers(tmp_path)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def brokers() -> Iterator[Callable[..., RedisSentinelBroker]]:
    made: list[RedisSentinelBroker] = []

    def make(url: str) -> RedisSentinelBroker:
        broker = gsse.Broker.from_url(url, history=100)
        assert isinstance(broker, RedisSentinelBroker)
        broker.publish_timeout = 60.0  # a failover takes seconds
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def failover(sentinel: SentinelServers, old_port: int) -> None:
    wait_for(lambda: sentinel.primary_port() != old_port, "Sentinel to fail over")


def test_a_failover_replays_what_was_published_meanwhile(
    serve: Serve,
    sentinel: SentinelServers,
    brokers: Callable[..., RedisSentinelBroker],
) -> None:
    """Primary killed, replica promoted: the stream resumes with no gap."""
    broker = brokers(sentinel.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("c"), timeout=60) as stream:
        assert wait_until(lambda: broker.live_subscribers("c") == 1, timeout=20)
        first = broker.publish("c", "before")
        assert [m.id for m in stream.events(1, timeout=20)] == [first]
        old = sentinel.primary()
        replicated(old)
        old.kill()
        assert wait_until(lambda: not broker.reachable, timeout=30)
        failover(sentinel, old.port)
        other = brokers(sentinel.url)
        missed = [other.publish("c", f"missed {i}") for i in range(3)]
        assert [m.id for m in stream.events(3, timeout=60)] == missed
        new = broker.publish("c", "after")
        got = stream.events(1, timeout=30)
        assert [(m.event, m.id) for m in got] == [("message", new)]
        assert wait_until(lambda: broker.reachable, timeout=30)


def test_a_failover_that_lost_an_event_sends_a_reset(
    serve: Serve,
    sentinel: SentinelServers,
    brokers: Callable[..., RedisSentinelBroker],
) -> None:
    """The promoted replica never got the last event: one reset, then live."""
    broker = brokers(sentinel.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("c"), timeout=60) as stream:
        assert wait_until(lambda: broker.live_subscribers("c") == 1, timeout=20)
        first = broker.publish("c", "replicated")
        assert [m.id for m in stream.events(1, timeout=20)] == [first]
        old, replica = sentinel.primary(), sentinel.replica()
        replicated(old)
        lose_next_writes(old, replica)
        lost = broker.publish("c", "only on the old primary")
        assert [m.id for m in stream.events(1, timeout=20)] == [lost]
        old.kill()
        replica.resume()
        failover(sentinel, old.port)
        reset = stream.events(1, timeout=60)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data) == {"channel": "c", "last_event_id": lost}
        assert reset.id == first
        new = broker.publish("c", "after")
        got = stream.events(1, timeout=30)
        assert [(m.event, m.data, m.id) for m in got] == [("message", "after", new)]


def test_a_sentinel_failover_command_is_survived_exactly(
    serve: Serve,
    sentinel: SentinelServers,
    brokers: Callable[..., RedisSentinelBroker],
) -> None:
    """``SENTINEL FAILOVER``: the old primary lives on as a replica; no loss."""
    broker = brokers(sentinel.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("c"), timeout=60) as stream:
        assert wait_until(lambda: broker.live_subscribers("c") == 1, timeout=20)
        first = broker.publish("c", "before")
        assert [m.id for m in stream.events(1, timeout=20)] == [first]
        old = sentinel.primary()
        replicated(old)
        with sentinel.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        failover(sentinel, old.port)
        missed = [brokers(sentinel.url).publish("c", f"missed {i}") for i in range(3)]
        got = stream.events(3, timeout=60)
        assert [(m.event, m.id) for m in got] == [("message", i) for i in missed]


def test_a_frozen_primary_is_failed_over_and_streams_follow(
    serve: Serve,
    sentinel: SentinelServers,
    brokers: Callable[..., RedisSentinelBroker],
) -> None:
    """SIGSTOP, not SIGKILL: the old primary's connections stay open, silent.

    The listener notices (its PING goes unanswered), reconnects through the
    Sentinels to the new primary, and the stream resumes exactly.
    """
    broker = brokers(sentinel.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("c"), timeout=60) as stream:
        assert wait_until(lambda: broker.live_subscribers("c") == 1, timeout=20)
        first = broker.publish("c", "before")
        assert [m.id for m in stream.events(1, timeout=20)] == [first]
        old = sentinel.primary()
        replicated(old)
        old.pause()
        try:
            failover(sentinel, old.port)
            other = brokers(sentinel.url)
            missed = [other.publish("c", f"missed {i}") for i in range(3)]
            got = stream.events(3, timeout=90)
            assert [(m.event, m.id) for m in got] == [("message", i) for i in missed]
        finally:
            old.resume()
