"""What only redis:// does, against a real redis-server: outages, restarts,
foreign entries, retried publishes (the shared contract is in tests/brokers/)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import redis

import gsse
from gsse import Server
from gsse.brokers.redis import RedisBroker
from gsse.metrics import STATS
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)

Serve = Callable[..., Server]

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]


def sub_path(*channels: str) -> str:
    return "/sub?" + urllib.parse.urlencode([("channel", c) for c in channels])


def live(broker: gsse.Broker, channel: str) -> int:
    """Subscribers of ``channel`` in this process that are past their replay."""
    return broker.live_subscribers(channel)


@pytest.fixture
def brokers(redis_server: RedisServer) -> Iterator[list[RedisBroker]]:  # noqa: F811
    """Brokers made by the test (closed after it)."""
    made: list[RedisBroker] = []
    yield made
    for broker in made:
        broker.close()


def make_broker(made: list[RedisBroker], url: str, **options: object) -> RedisBroker:
    broker = RedisBroker(url, **options)  # type: ignore[arg-type]
    made.append(broker)
    return broker


def test_publish_raises_broker_unavailable_while_redis_is_down(
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],
) -> None:
    """Publish retries for publish_timeout seconds, then raises (a ConnectionError)."""
    broker = make_broker(brokers, redis_server.url, publish_timeout=1.0)
    broker.publish("c", "up")
    redis_server.kill()
    errors = STATS.broker_errors
    started = time.monotonic()
    # It gives up (the bound is generous: what counts is that it raises) ...
    with (
        gevent.Timeout(60),
        pytest.raises(gsse.BrokerUnavailable, match="did not answer") as info,
    ):
        broker.publish("c", "down")
    assert isinstance(info.value, ConnectionError)
    # ... and not before publish_timeout (load can only make this longer).
    assert time.monotonic() - started >= 0.9
    assert STATS.broker_errors > errors
    redis_server.start()
    assert broker.publish("c", "back again")


def test_redis_restart_keeps_streams_open_and_replays_what_was_missed(
    serve: Serve,
    tmp_path: Path,
    brokers: list[RedisBroker],
) -> None:
    """Redis killed and restarted with its data: open streams resume, no gap."""
    server = (
        RedisServer(tmp_path / "aof", persistent=True) if _mkdir(tmp_path) else None
    )
    assert server is not None
    try:
        broker = make_broker(brokers, server.url)
        port = serve(make_app(broker)).port
        with RawStream(port, sub_path("c"), timeout=30) as stream:
            assert wait_until(lambda: live(broker, "c") == 1, timeout=10)
            first = broker.publish("c", "before")
            assert [m.id for m in stream.events(1, timeout=10)] == [first]
            # 1. Kill Redis; the stream stays open while it is away.
            server.kill()
            assert wait_until(lambda: STATS.broker_errors > 0, timeout=10)
            # 2. Restart it and publish at once, from another client.
            server.start()
            other = make_broker(brokers, server.url)
            missed = [other.publish("c", f"missed {i}") for i in range(3)]
            # 3. The missed events arrive, once, then live ones.
            got = stream.events(3, timeout=30)
            assert [m.id for m in got] == missed
            new = other.publish("c", "after")
            assert [m.id for m in stream.events(1, timeout=20)] == [new]
            assert not stream.ended
    finally:
        server.stop()


def _mkdir(tmp_path: Path) -> bool:
    (tmp_path / "aof").mkdir()
    return True


def test_redis_restart_without_its_data_sends_a_reset(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],
) -> None:
    """Redis restarted empty: open streams get one reset, then live events."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("c"), timeout=30) as stream:
        assert wait_until(lambda: live(broker, "c") == 1, timeout=10)
        first = broker.publish("c", "before")
        assert [m.id for m in stream.events(1, timeout=10)] == [first]
        redis_server.kill()
        assert wait_until(lambda: not broker.reachable, timeout=15)
        redis_server.start()
        # The reader notices the lost history and resets the stream.
        reset = stream.events(1, timeout=30)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data) == {"channel": "c", "last_event_id": first}
        new = broker.publish("c", "after")
        after = stream.events(1, timeout=20)[0]
        assert (after.data, after.id) == ("after", new)
        assert [m.id for m in stream.events(0)] == []


def test_a_new_stream_waits_for_redis(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],
) -> None:
    """While Redis is down a new stream gets 200 and its events once it is back."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    redis_server.kill()
    with RawStream(port, sub_path("w"), timeout=30) as stream:
        assert stream.status == 200
        redis_server.start()
        assert wait_until(lambda: live(broker, "w") == 1, timeout=20)
        new = broker.publish("w", "hello")
        message = stream.events(1, timeout=20)[0]
    assert (message.data, message.id) == ("hello", new)


def test_a_stream_whose_snapshot_is_older_than_the_readers_gets_the_gap(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two streams join a new channel out of order: the older one misses nothing."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    read_states = broker._read_states
    calls: list[int] = []

    def slow_first_read(*args: object) -> object:
        states = read_states(*args)  # type: ignore[arg-type]
        calls.append(1)
        if len(calls) == 1:
            gevent.sleep(0.5)  # stream A's snapshot is taken, then it stalls
        return states

    monkeypatch.setattr(broker, "_read_states", slow_first_read)
    with RawStream(port, sub_path("g")) as stream_a:
        assert wait_until(lambda: calls, timeout=10)
        # 1. Published after A's snapshot, before B makes the reader follow "g".
        e1 = broker.publish("g", "e1")
        with RawStream(port, sub_path("g")) as stream_b:
            assert wait_until(lambda: live(broker, "g") >= 1, timeout=10)
            # 2. Published once the reader follows "g" from B's snapshot (e1).
            e2 = broker.publish("g", "e2")
            assert [m.id for m in stream_b.events(1, timeout=10)] == [e2]
            assert [m.id for m in stream_a.events(2, timeout=10)] == [e1, e2]


def test_a_foreign_entry_in_a_channel_stream_is_skipped_and_logged(
    serve: Serve,
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry some other program added is logged and skipped; streams go on."""
    broker = make_broker(brokers, redis_server.url)
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("c")) as stream:
        assert wait_until(lambda: live(broker, "c") == 1, timeout=10)
        other = redis.Redis.from_url(redis_server.url)
        try:
            other.xadd("gsse:stream:c", {"not": "ours"})
        finally:
            other.close()
        new = broker.publish("c", "ours")
        assert [m.id for m in stream.events(1, timeout=10)] == [new]
    assert "was not written by gsse" in caplog.text


def test_a_retried_publish_adds_its_event_once(
    redis_server: RedisServer,  # noqa: F811
    brokers: list[RedisBroker],
) -> None:
    """Running a publish again with its token (a retry) returns the same id."""
    broker = make_broker(brokers, redis_server.url)
    token = b"gsse:published:test-token"
    first = broker._run_publish("once", b"data: x\n\n", token, 10)
    again = broker._run_publish("once", b"data: x\n\n", token, 10)
    assert first == again
    other = redis.Redis.from_url(redis_server.url)
    try:
        assert other.xlen("gsse:stream:once") == 1
        assert 0 < other.ttl(b"gsse:published:test-token") <= 10
    finally:
        other.close()
