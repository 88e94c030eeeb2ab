"""Key names and the URLs of redis+cluster:// and redis+sentinel:// (no server)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

import gsse
from gsse.brokers.redis_cluster import RedisClusterBroker
from gsse.brokers.redis_sentinel import RedisSentinelBroker
from gsse.brokers.redis_topology import KeyNames
from gsse.brokers.redis_topology import parse_hosts
from gsse.brokers.redis_topology import where_of


def test_one_redis_keeps_the_key_names_it_always_had() -> None:
    keys = KeyNames("gsse", hash_tags=False)
    assert keys.key("stream", "news") == b"gsse:stream:news"
    assert keys.notify("news") == b"gsse:notify"
    assert keys.token("news").startswith(b"gsse:published:")
    assert b"news" not in keys.token("news")


@pytest.mark.parametrize("channel", ["news", "a}b", "}", "{x}", "{", "é}{", "a b"])
def test_in_a_cluster_every_key_of_a_channel_shares_its_slot(channel: str) -> None:
    """Stream, token and notify channel: one slot, whatever the name holds."""
    keys = KeyNames("gsse", hash_tags=True)
    stream = keys.key("stream", channel)
    assert stream.startswith(b"gsse:stream:{")
    slots = {key_slot(k) for k in (stream, keys.token(channel), keys.notify(channel))}
    assert slots == {key_slot(stream)}
    assert keys.token(channel) != keys.token(channel)


def test_cluster_key_names_of_different_channels_differ() -> None:
    keys = KeyNames("gsse", hash_tags=True)
    names = ["a", "a}", "{a}", "~a", "a}b", "a}c", "}"]
    assert len({keys.key("stream", n) for n in names}) == len(names)
    assert keys.key("stream", "news") == b"gsse:stream:{news}"


def test_a_cluster_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        KeyNames("g{s}e", hash_tags=True)


def test_hosts_default_ports_and_credentials() -> None:
    hosts = parse_hosts("redis+sentinel://u:p%40ss@h1,h2:26380,[::1]:5/mymaster/2")
    assert hosts.nodes == [("h1", 26379), ("h2", 26380), ("::1", 5)]
    assert (hosts.username, hosts.password) == ("u", "p@ss")
    assert hosts.path == ["mymaster", "2"]
    cluster = parse_hosts("redis+cluster://:secret@10.0.0.1:7000,10.0.0.2")
    assert cluster.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 6379)]
    assert (cluster.username, cluster.password) == (None, "secret")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://h:70000", "needs host:port"),
        ("redis+cluster://h:x", "bad port"),
        ("redis+cluster://h1,,h2", "needs host:port"),
        ("redis+cluster://h:1?ssl=true", "no query"),
        ("redis+cluster://h:1/0", "no database"),
        ("redis+sentinel://h:1", "names the service"),
        ("redis+sentinel://h:1/mymaster/zero", "must be a number"),
    ],
)
def test_bad_urls_say_what_to_fix(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gsse.Broker.from_url(url)


def test_logs_show_the_hosts_without_the_password() -> None:
    url = "redis+sentinel://user:secret@h1:1,h2:2/mymaster"
    assert where_of(url) == "redis+sentinel://h1:1,h2:2/mymaster"
    assert where_of("redis://:secret@h:6379/0") == "redis://h:6379/0"


def test_from_url_builds_them_without_connecting() -> None:
    cluster = gsse.Broker.from_url("redis+cluster://127.0.0.1:1?history=5")
    sentinel = gsse.Broker.from_url("redis+sentinel://127.0.0.1:1/svc")
    try:
        assert isinstance(cluster, RedisClusterBroker)
        assert cluster.history == 5
        assert isinstance(sentinel, RedisSentinelBroker)
        assert "secret" not in repr(sentinel)
    finally:
        cluster.close()
        sentinel.close()
    with pytest.raises(TypeError, match="take no max_history_events"):
        gsse.Broker.from_url("redis+cluster://h:1", max_history_events=3)
