"""redis:// costs: what Redis keeps, how much it reads, how many connections."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis
import requests

from gsse import Server
from gsse.brokers import redis_pool
from gsse.brokers.redis import RedisBroker
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.procs import free_port
from tests.procs import processes
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)
from tests.test_broker_redis import brokers  # noqa: F401 (a fixture)
from tests.test_broker_redis import live
from tests.test_broker_redis import make_broker
from tests.test_broker_redis import sub_path

Serve = Callable[..., Server]

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

#: Names a client could pick: plain, odd, non-ASCII, long.
NAMES = ["a", "x y", "ünï/cödé", "日本", "-0-0", "*", "k:" + "z" * 190]


def keys_in(server: RedisServer) -> dict[bytes, int]:
    """Every key in the test's Redis, with its TTL (-1: none)."""
    client = redis.Redis.from_url(server.url)
    try:
        return {key: client.ttl(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


def queue_publishes(
    broker: RedisBroker, pipe: Any, channel: str, datas: list[str]
) -> None:
    """Queue gsse publishes on a Redis transaction, so no reader runs between."""
    for i, data in enumerate(datas):
        keys = [broker._stream_key(channel), f"gsse:published:{channel}-{i}".encode()]
        args = [broker.history, f"data: {data}\n\n".encode(), 10]
        broker._publish(
            keys=keys, args=[*args, broker._notify, channel.encode()], client=pipe
        )


def other_clients(server: RedisServer) -> int:
    """Connections to the test's Redis, not counting the one asking."""
    client = redis.Redis.from_url(server.url)
    try:
        return len(client.client_list()) - 1
    finally:
        client.close()


def test_subscribing_without_publishing_leaves_nothing_in_redis(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """Streams on 300 never-published channels leave only counts, which expire.

    A stream's only trace is its process's count on each channel (for
    ``broker.subscribers``) and the process's liveness key, all with a TTL;
    once the streams end, only the liveness key is left, and it expires.
    """
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    names = NAMES + [f"anon-{i}" for i in range(300)]
    headers = [{}, {"Last-Event-ID": "1700000000000-0"}, {"Last-Event-ID": "0-0"}]
    streams = [
        RawStream(port, sub_path(name), headers=headers[i % 3], timeout=30)
        for i, name in enumerate(names)
    ]
    streams.append(RawStream(port, sub_path("m1", "m2"), timeout=30))
    try:
        assert wait_until(lambda: all(live(broker, n) == 1 for n in names), 30)
        expected = {f"gsse:count:{name}".encode() for name in [*names, "m1", "m2"]}
        assert wait_until(lambda: set(keys_in(redis_server)) >= expected, 30)
        assert all(ttl > 0 for ttl in keys_in(redis_server).values())
        assert {k.split(b":")[1] for k in keys_in(redis_server)} == {
            b"count",
            b"alive",
        }
    finally:
        for stream in streams:
            stream.close()
    assert wait_until(lambda: broker.followed_channels() == 0, timeout=10)
    assert wait_until(lambda: len(keys_in(redis_server)) == 1, timeout=30)
    ((key, ttl),) = keys_in(redis_server).items()
    assert key.startswith(b"gsse:alive:") and ttl > 0


def test_publish_keeps_one_trimmed_stream_and_tokens_that_expire(
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """Publishing keeps the Stream at `history` entries; every other key expires."""
    broker = make_broker(brokers, redis_server.url, history=3, publish_timeout=0)
    for name in NAMES:
        for i in range(7):
            broker.publish(name, i)
    keys = keys_in(redis_server)
    streams = {k: ttl for k, ttl in keys.items() if k.startswith(b"gsse:stream:")}
    assert sorted(streams) == sorted(f"gsse:stream:{n}".encode() for n in NAMES)
    others = {k: ttl for k, ttl in keys.items() if k not in streams}
    assert len(others) == 7 * len(NAMES)  # one retry token per publish
    assert all(k.startswith(b"gsse:published:") for k in others)
    # publish_timeout=0: the token lives 2 * REPLY_TIMEOUT + 1 s at most.
    assert all(0 < ttl <= 11 for ttl in others.values())
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert all(client.xlen(k) == 3 for k in streams)
    finally:
        client.close()


def test_an_empty_channels_position_resumes_without_a_reset(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """A stream's position in an empty channel resumes: later events are replayed."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("busy", "quiet")) as stream:
        assert wait_until(lambda: live(broker, "quiet") == 1, timeout=10)
        first = broker.publish("busy", "b1")
        got = stream.events(1, timeout=10)[0]
    assert got.id == f"{first},0-0"
    # Published while the client is away, to the channel that was empty.
    q1 = broker.publish("quiet", "q1")
    b2 = broker.publish("busy", "b2")
    headers = {"Last-Event-ID": got.id}
    with RawStream(port, sub_path("busy", "quiet"), headers=headers) as stream:
        replay = stream.events(2, timeout=10)
        assert [m.event for m in replay] == ["message", "message"]
        assert sorted(m.data for m in replay) == ["b2", "q1"]  # same ms: any order
        assert replay[-1].id == f"{b2},{q1}"
    # A one-channel stream's reset on an empty channel says 0-0, which resumes.
    with RawStream(port, sub_path("never"), headers={"Last-Event-ID": "9-9"}) as s:
        reset = s.events(1, timeout=10)[0]
        assert (reset.event, reset.id) == ("reset", "0-0")
    with RawStream(port, sub_path("never"), headers={"Last-Event-ID": "0-0"}) as s:
        assert wait_until(lambda: live(broker, "never") == 1, timeout=10)
        new = broker.publish("never", "first")
        assert [(m.event, m.id) for m in s.events(1, timeout=10)] == [("message", new)]


def test_ids_from_before_redis_lost_its_data_get_a_reset(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """After Redis restarts empty, an old id gets a reset, whether or not the
    channel was published to again."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    old = [broker.publish(name, "before") for name in ("again", "gone")]
    redis_server.kill()
    redis_server.start()
    new = broker.publish("again", "after")
    for name, last_id, newest in [("again", old[0], new), ("gone", old[1], "0-0")]:
        headers = {"Last-Event-ID": last_id}
        with RawStream(port, sub_path(name), headers=headers) as stream:
            reset = stream.events(1, timeout=20)[0]
        assert (reset.event, reset.id) == ("reset", newest)
        assert json.loads(reset.data) == {"channel": name, "last_event_id": last_id}


def test_the_reader_reads_only_channels_that_got_events(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """With 1000 channels followed, an event makes Redis read a few streams."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    names = [f"many-{i}" for i in range(1000)]
    streams = [
        RawStream(port, sub_path(*names[i : i + 50])) for i in range(0, 1000, 50)
    ]
    watched = RawStream(port, sub_path("hot"))
    monitor_client = redis.Redis.from_url(redis_server.url)
    try:
        assert wait_until(lambda: live(broker, "hot") == 1, timeout=20)
        assert wait_until(lambda: all(live(broker, n) == 1 for n in names), 20)
        gevent.sleep(0.5)  # the sweep after subscribing is done
        keys_read: list[int] = []
        with monitor_client.monitor() as monitor:

            def watch() -> None:
                for command in monitor.listen():
                    words = command["command"].split()
                    if words and words[0].upper() == "XREAD":
                        after = words.index("STREAMS") + 1
                        keys_read.append((len(words) - after) // 2)

            watcher = gevent.spawn(watch)
            ids = [broker.publish("hot", i) for i in range(20)]
            got = watched.events(20, timeout=20)
            gevent.sleep(0.2)
            watcher.kill()
        assert [m.id for m in got] == ids
        assert keys_read  # the events were read by XREAD
        # Old reader: every XREAD named all 1001 streams.
        assert max(keys_read) < 100
    finally:
        monitor_client.close()
        watched.close()
        for stream in streams:
            stream.close()


def test_events_announced_while_the_listener_was_cut_off_still_arrive(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """Publishes whose pub/sub notice nobody heard are read after the reconnect."""
    broker = make_broker(brokers, redis_server.url)
    other = make_broker(brokers, redis_server.url)  # as another process would
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("cut", "other"), timeout=30) as stream:
        assert wait_until(lambda: live(broker, "other") == 1, timeout=10)
        first = other.publish("cut", "before")
        assert [m.data for m in stream.events(1, timeout=10)] == ["before"]
        # In one transaction: drop the listener's connection, then publish,
        # so the notices of these events reach no one.
        pipe = other._client.pipeline(transaction=True)
        pipe.client_kill_filter(_type="pubsub")
        queue_publishes(other, pipe, "cut", [f"lost {i}" for i in range(3)])
        replies = pipe.execute()
        got = stream.events(3, timeout=20)
        assert [m.data for m in got] == ["lost 0", "lost 1", "lost 2"]
        assert [m.id.split(",")[0] for m in got] == [r.decode() for r in replies[1:]]
        assert first < got[0].id
        new = other.publish("other", "later")
        assert stream.events(1, timeout=10)[0].id.split(",")[1] == new


def test_idle_and_dead_connections_are_closed(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst's connections close when idle, and none stays in CLOSE-WAIT."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port

    def burst() -> list[RawStream]:
        def one(i: int) -> RawStream:
            return RawStream(port, sub_path("burst", f"b{i}"), timeout=30)

        opened = [gevent.spawn(one, i) for i in range(60)]
        gevent.joinall(opened, timeout=60, raise_error=True)
        streams = [g.value for g in opened]
        assert wait_until(lambda: live(broker, "burst") == 60, timeout=30)
        broker.publish("burst", "go")
        for stream in streams:
            assert stream.events(1, timeout=30)[0].data == "go"
        return streams

    for stream in burst():
        stream.close()
    assert other_clients(redis_server) <= redis_pool.MAX_CONNECTIONS + 1
    # 1. Idle connections close (here after 0.2 s instead of 30 s).
    monkeypatch.setattr(redis_pool, "IDLE_SECONDS", 0.2)
    assert wait_until(lambda: other_clients(redis_server) == 1, timeout=20)
    # 2. After a restart no connection to the dead Redis stays in CLOSE-WAIT.
    monkeypatch.setattr(redis_pool, "IDLE_SECONDS", 3600)
    for stream in burst():
        stream.close()
    redis_server.kill()
    assert wait_until(lambda: not broker.reachable, timeout=15)
    redis_server.start()
    assert wait_until(lambda: close_wait_to(redis_server.port) == 0, timeout=20)
    assert broker.publish("burst", "after")


def close_wait_to(port: int) -> int:
    """Sockets on this machine in CLOSE-WAIT towards 127.0.0.1:``port``."""
    remote = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == remote and fields[3] == "08":
            count += 1
    return count


SHARED = sub_path("shared")


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_500_concurrent_subscribers_cost_a_bounded_number_of_connections(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """500 streams subscribing at once leave `gsse run` at idle fds + the pool bound."""
    bound = redis_pool.MAX_CONNECTIONS + 1  # the pool and the pub/sub connection
    with processes(tmp_path) as procs:
        port = free_port()
        process = procs.gsse(
            "run", "tests.apps.broker_app:app", "--port", str(port),
            "--broker", redis_server.url,
        )  # fmt: skip
        process.wait_port(port, timeout=30)
        # Warm up (lazily made fds), then count the idle process's fds.
        before = {"Last-Event-ID": post_event(port, "cold")}
        post_event(port, "warm")
        with RawStream(port, SHARED, headers=before, timeout=30) as stream:
            stream.read_until(b"warm", timeout=30)
        gevent.sleep(0.5)
        idle = fds_of(process.pid)
        peak = 0
        sampling = True

        def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, other_clients(redis_server))
                gevent.sleep(0.01)

        sampler = gevent.spawn(sample)
        # Subscribe at once, each with a Last-Event-ID that needs a replay read.
        start = post_event(port, "start")
        post_event(port, "second")
        headers = {"Last-Event-ID": start}
        opening = [
            gevent.spawn(lambda: RawStream(port, SHARED, headers=headers, timeout=60))
            for _ in range(500)
        ]
        gevent.joinall(opening, timeout=90, raise_error=True)
        streams = [g.value for g in opening]
        try:
            for stream in streams:
                assert stream.events(1, timeout=60)[0].data == "second"
        finally:
            for stream in streams:
                stream.close()
        # Let it stop between calls: killed inside one, it leaves that
        # connection open (one client too many, and an unclosed socket).
        sampling = False
        sampler.join(timeout=30)
        assert peak <= bound
        assert wait_until(lambda: fds_of(process.pid) <= idle + bound, timeout=30)
        assert other_clients(redis_server) <= bound


def post_event(port: int, data: str) -> str:
    reply = requests.post(
        f"http://127.0.0.1:{port}/publish",
        data={"channel": "shared", "data": data},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    new_id: str = reply.json()["id"]
    return new_id


def test_a_burst_longer_than_history_gets_a_reset_not_a_silent_gap(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],  # noqa: F811
) -> None:
    """Events trimmed before the reader read them: a reset, then what is left."""
    broker = make_broker(brokers, redis_server.url, history=5)
    other = make_broker(brokers, redis_server.url, history=5)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("burst"), timeout=30) as stream:
        assert wait_until(lambda: live(broker, "burst") == 1, timeout=60)
        other.publish("burst", "before")
        assert [m.data for m in stream.events(1, timeout=60)] == ["before"]
        # Twenty events in one transaction: the reader cannot read between
        # them, and MAXLEN keeps only the last five.
        pipe = other._client.pipeline(transaction=True)
        queue_publishes(other, pipe, "burst", [f"n{i}" for i in range(20)])
        pipe.execute()
        got = stream.events(6, timeout=60)
    assert got[0].event == "reset"
    assert json.loads(got[0].data)["channel"] == "burst"
    assert [m.data for m in got[1:]] == [f"n{i}" for i in range(15, 20)]
