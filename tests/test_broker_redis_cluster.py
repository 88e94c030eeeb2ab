"""What only redis+cluster:// does, on a real Redis Cluster started here:
channels spread over the shards with each channel's keys in one slot, and a
shard's failover or a moved slot touching only that shard's channels.
(The shared channel contract runs on the cluster in tests/brokers/.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

import gsse
from gsse import Server
from gsse.brokers.redis_cluster import RedisClusterBroker
from tests.apps.broker_app import make_app
from tests.brokers.conftest import sub_path
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.redis_topology import ClusterServers
from tests.redis_topology import Node
from tests.redis_topology import lose_next_writes
from tests.redis_topology import replicated
from tests.redis_topology import wait_for

Serve = Callable[..., Server]

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """Three primaries, no replica, shared by the tests that change nothing."""
    servers = ClusterServers(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ClusterServers]:
    """Three primaries with a replica each, for one test to break."""
    servers = ClusterServers(tmp_path, primaries=3, replicas=1)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def brokers() -> Iterator[Callable[..., RedisClusterBroker]]:
    made: list[RedisClusterBroker] = []

    def make(url: str, **options: object) -> RedisClusterBroker:
        broker = gsse.Broker.from_url(url, history=100)
        assert isinstance(broker, RedisClusterBroker)
        for name, value in options.items():
            setattr(broker, name, value)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def subscribe(port: int, broker: gsse.Broker, channel: str) -> RawStream:
    stream = RawStream(port, sub_path(channel), timeout=60)
    assert wait_until(lambda: broker.live_subscribers(channel) == 1, timeout=30)
    return stream


def channels_on(cluster: ClusterServers, node: Node, count: int) -> list[str]:
    """``count`` channel names whose slot ``node`` serves."""
    found: list[str] = []
    for i in range(10_000):
        if cluster.primary_of(f"gsse:stream:{{s{i}}}") is node:
            found.append(f"s{i}")
            if len(found) == count:
                return found
    raise RuntimeError("no such channel names")


def test_channels_spread_over_the_shards_and_keep_their_keys_in_one_slot(
    cluster: ClusterServers, brokers: Callable[..., RedisClusterBroker]
) -> None:
    """Sixty channels use all three primaries; every key names its channel's slot."""
    cluster.flush()
    broker = brokers(cluster.url)
    names = [f"room-{i}" for i in range(60)] + ["odd}name", "{braced}"]
    for name in names:
        broker.publish(name, "x")
    seen: dict[str, int] = {}
    for node in cluster.nodes:
        with node.client() as client:
            keys = list(client.scan_iter(count=1000))
            assert keys, f"no channel landed on the primary at port {node.port}"
            for key in keys:
                seen[key.decode()] = client.cluster("keyslot", key)
    for name in names:
        stream_key = broker._stream_key(name).decode()
        slot = seen[stream_key]
        tag = stream_key[len("gsse:stream:") :]
        # The token of its publish (still there) is in the same slot.
        assert [s for k, s in seen.items() if k.startswith("gsse:published:" + tag)]
        assert {s for k, s in seen.items() if tag in k} == {slot}
    assert len({s for s in seen.values()}) > 3


def test_presence_of_channels_on_every_shard_keeps_its_keys_in_one_slot(
    serve: Serve, cluster: ClusterServers, brokers: Callable[..., RedisClusterBroker]
) -> None:
    """Members on a channel of each primary: each channel's presence keys
    (count, liveness, members) and delivery reports share its stream's slot,
    and presence, subscribers and delivery counts see them all."""
    cluster.flush()
    broker = brokers(cluster.url)
    port = serve(make_app(broker)).port
    names = [channels_on(cluster, node, 1)[0] for node in cluster.nodes]
    streams = []
    try:
        for name in names:
            path = sub_path(name) + "&user=" + name
            streams.append(RawStream(port, path, timeout=60))
        for name in names:
            assert wait_until(lambda n=name: broker.subscribers(n) == 1, 30)
            assert broker.presence(name) == [{"user": name}]
            assert broker.publish(name, "x", return_delivery=True)[1] == 1
        seen: dict[str, int] = {}
        for node in cluster.nodes:
            with node.client() as client:
                for key in client.scan_iter(count=1000):
                    seen[key.decode()] = client.cluster("keyslot", key)
        for name in names:
            slot = seen[broker._stream_key(name).decode()]
            for kind in ("count", "alive", "members"):
                assert seen[f"gsse:{kind}:{{{name}}}"] == slot
            assert {s for k, s in seen.items() if "{" + name + "}" in k} == {slot}
    finally:
        for stream in streams:
            stream.close()
    for name in names:
        assert wait_until(lambda n=name: broker.presence(n) == [], 30)


def test_a_channel_named_with_braces_replays_exactly(
    serve: Serve, cluster: ClusterServers, brokers: Callable[..., RedisClusterBroker]
) -> None:
    """``}`` cannot end a hash tag of its own: such names still work."""
    broker = brokers(cluster.url)
    port = serve(make_app(broker)).port
    ids = [broker.publish("a}b{c", f"e{i}") for i in range(3)]
    headers = {"Last-Event-ID": ids[0]}
    with RawStream(port, sub_path("a}b{c"), headers=headers, timeout=30) as stream:
        assert [m.id for m in stream.events(2, timeout=20)] == ids[1:]


def test_streams_subscribing_at_once_share_one_cluster_client(
    cluster: ClusterServers, brokers: Callable[..., RedisClusterBroker]
) -> None:
    """The client is made on first use, once, however many ask at that moment."""
    broker = brokers(cluster.url)
    made = gevent.joinall([gevent.spawn(broker._nodes.client) for _ in range(50)])
    assert len({id(g.value) for g in made}) == 1


def test_a_broker_made_before_the_cluster_is_up_connects_nothing() -> None:
    """Like redis://: made at import time, it fails only when used."""
    broker = gsse.Broker.from_url("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    assert isinstance(broker, RedisClusterBroker)
    broker.publish_timeout = 0.2
    try:
        with pytest.raises(gsse.BrokerUnavailable, match="did not answer"):
            broker.publish("c", "x")
    finally:
        broker.close()


def test_a_moved_slot_keeps_its_streams_without_loss_or_reset(
    serve: Serve, tmp_path: Path, brokers: Callable[..., RedisClusterBroker]
) -> None:
    """Resharding moves a followed channel: its stream goes on, exactly."""
    cluster = ClusterServers(tmp_path)
    try:
        broker = brokers(cluster.url)
        port = serve(make_app(broker)).port
        with subscribe(port, broker, "moving") as stream:
            before = broker.publish("moving", "before")
            assert [m.id for m in stream.events(1, timeout=20)] == [before]
            key = broker._stream_key("moving").decode()
            source = cluster.primary_of(key)
            target = next(n for n in cluster.nodes if n is not source)
            cluster.move_slot(key, target)
            other = brokers(cluster.url)
            after = [other.publish("moving", f"after {i}") for i in range(3)]
            got = stream.events(3, timeout=60)
            assert [(m.event, m.id) for m in got] == [("message", i) for i in after]
            with target.client() as client:
                assert client.xlen(key) == 4
    finally:
        cluster.stop()


def test_a_shard_failover_costs_only_that_shards_channels_a_replay_or_reset(
    serve: Serve,
    own_cluster: ClusterServers,
    brokers: Callable[..., RedisClusterBroker],
) -> None:
    """SIGKILL one primary; its replica takes over.

    - ``kept``: on that shard, replicated: its stream resumes exactly.
    - ``lost``: on that shard, last event never replicated: one ``reset``.
    - ``elsewhere``: on another shard: events flow, nothing else happens.
    """
    cluster = own_cluster
    broker = brokers(cluster.url)
    port = serve(make_app(broker)).port
    victim = cluster.primary_of("gsse:stream:{x}")
    kept, lost = channels_on(cluster, victim, 2)
    other_primary = next(
        n for n in cluster.nodes if n is not victim and cluster.role(n) == "master"
    )
    (elsewhere,) = channels_on(cluster, other_primary, 1)
    streams = {c: subscribe(port, broker, c) for c in (kept, lost, elsewhere)}
    try:
        first = {c: broker.publish(c, "first") for c in streams}
        for channel, stream in streams.items():
            assert [m.id for m in stream.events(1, timeout=20)] == [first[channel]]
        replicated(victim)
        replica = cluster.replica_of(victim)
        lose_next_writes(victim, replica)
        unreplicated = broker.publish(lost, "only on the old primary")
        assert [m.id for m in streams[lost].events(1, timeout=20)] == [unreplicated]
        victim.kill()
        replica.resume()
        # The other shard goes on while this one fails over.
        during = broker.publish(elsewhere, "during")
        assert [m.id for m in streams[elsewhere].events(1, timeout=30)] == [during]
        wait_for(lambda: cluster.failed_over(victim, f"gsse:stream:{{{kept}}}"), "")
        publisher = brokers(cluster.url, publish_timeout=60.0)
        missed = [publisher.publish(kept, f"missed {i}") for i in range(3)]
        assert [m.id for m in streams[kept].events(3, timeout=60)] == missed
        reset = streams[lost].events(1, timeout=60)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data) == {
            "channel": lost,
            "last_event_id": unreplicated,
        }
        assert reset.id == first[lost]
        assert wait_until(lambda: broker.reachable, timeout=30)
        last = {c: publisher.publish(c, "last") for c in streams}
        for channel, stream in streams.items():
            got = stream.events(1, timeout=30)
            assert [(m.event, m.id) for m in got] == [("message", last[channel])]
    finally:
        for stream in streams.values():
            stream.close()


def test_a_frozen_primary_is_failed_over_and_its_channels_follow(
    serve: Serve,
    own_cluster: ClusterServers,
    brokers: Callable[..., RedisClusterBroker],
) -> None:
    """SIGSTOP, not SIGKILL: no connection closes, nothing answers any more.

    The cluster promotes the replica; the listener on the frozen primary
    hears nothing, notices (its PING goes unanswered) or the slot map tells
    the reader first, and the channel resumes on the new primary exactly.
    """
    cluster = own_cluster
    broker = brokers(cluster.url)
    port = serve(make_app(broker)).port
    victim = cluster.primary_of("gsse:stream:{x}")
    (channel,) = channels_on(cluster, victim, 1)
    with subscribe(port, broker, channel) as stream:
        first = broker.publish(channel, "first")
        assert [m.id for m in stream.events(1, timeout=20)] == [first]
        replicated(victim)
        victim.pause()
        try:
            key = f"gsse:stream:{{{channel}}}"
            wait_for(lambda: cluster.failed_over(victim, key), "a failover")
            publisher = brokers(cluster.url, publish_timeout=60.0)
            missed = [publisher.publish(channel, f"missed {i}") for i in range(3)]
            got = stream.events(3, timeout=90)
            assert [(m.event, m.id) for m in got] == [("message", i) for i in missed]
        finally:
            victim.resume()
