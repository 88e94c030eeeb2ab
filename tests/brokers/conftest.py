"""One broker contract, four backends: fixtures for the parametrised suite.

Every test here runs on ``memory://``, on a real ``redis-server``, on a real
three-primary Redis Cluster (``redis+cluster://``) and on a real primary,
replica and three Sentinels (``redis+sentinel://``); the Redis ones are
marked ``redis``, started once per session on free loopback ports and
emptied before each test.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import gsse
from gsse import Server
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.redis_server import RedisServer
from tests.redis_topology import ClusterServers
from tests.redis_topology import SentinelServers

MakeBroker = Callable[..., gsse.Broker]


def sub_path(*channels: str) -> str:
    """The test app's path that streams ``channels``."""
    return "/sub?" + urllib.parse.urlencode([("channel", c) for c in channels])


def id_key(event_id: str) -> tuple[int, int]:
    """An event id as the pair it orders by."""
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` for the whole session, stopped by its PID."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterServers]:
    """One three-primary Redis Cluster for the whole session."""
    servers = ClusterServers(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def shared_sentinel(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SentinelServers]:
    """One primary, one replica and three Sentinels for the whole session."""
    servers = SentinelServers(Path(tmp_path_factory.mktemp("sentinel")))
    try:
        yield servers
    finally:
        servers.stop()


REDIS = pytest.mark.redis


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=REDIS),
        pytest.param("redis-cluster", marks=REDIS),
        pytest.param("redis-sentinel", marks=REDIS),
    ]
)
def broker_url(request: pytest.FixtureRequest) -> str:
    """``memory://``, or the URL of an emptied session Redis of that shape."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis-cluster":
        cluster: ClusterServers = request.getfixturevalue("shared_cluster")
        cluster.flush()
        return cluster.url
    if request.param == "redis-sentinel":
        sentinel: SentinelServers = request.getfixturevalue("shared_sentinel")
        with sentinel.primary().client() as client:
            client.flushdb()
        return sentinel.url
    server: RedisServer = request.getfixturevalue("shared_redis")
    client = redis.Redis.from_url(server.url)
    try:
        client.flushdb()
    finally:
        client.close()
    return server.url


@pytest.fixture
def make_broker(broker_url: str) -> Iterator[MakeBroker]:
    """``make_broker(query="", **options)``: a broker on this test's backend."""
    made: list[gsse.Broker] = []

    def make(query: str = "", **options: Any) -> gsse.Broker:
        broker = gsse.Broker.from_url(broker_url + query, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def broker(make_broker: MakeBroker) -> gsse.Broker:
    """A broker keeping 50 events per channel."""
    return make_broker(history=50)


@pytest.fixture
def publisher(
    broker: gsse.Broker, make_broker: MakeBroker, broker_url: str
) -> gsse.Broker:
    """Who publishes: on Redis another broker, as another process would be."""
    return make_broker(history=50) if broker_url.startswith("redis") else broker


@pytest.fixture
def port(serve: Callable[..., Server], broker: gsse.Broker) -> int:
    """A gsse server streaming ``broker``'s channels at ``/sub``."""
    return serve(make_app(broker)).port


def listening(broker: gsse.Broker, channel: str, count: int = 1) -> None:
    """Wait until ``count`` streams receive ``channel``'s live events."""
    assert wait_until(lambda: broker.live_subscribers(channel) == count, timeout=20)


def subscribe(
    port: int, broker: gsse.Broker, *channels: str, last_event_id: str | None = None
) -> RawStream:
    """Open a stream of ``channels`` and wait until it is live on each."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    stream = RawStream(port, sub_path(*channels), headers=headers, timeout=30)
    assert stream.status == 200
    for channel in channels:
        assert wait_until(lambda c=channel: broker.live_subscribers(c) >= 1, 20)
    return stream
