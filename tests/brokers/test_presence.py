"""Presence, join/leave events and delivery counts (API.md §8), on both backends.

Every stream here is a real connection to a real server; on Redis the
counts reach Redis a moment after a stream opens or closes, so each test
waits (bounded) until the broker says what the test then checks.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable

import pytest
import redis

import gsse
from gsse import Server
from gsse.brokers.redis import RedisBroker
from tests.apps.broker_app import make_app
from tests.brokers.conftest import MakeBroker
from tests.brokers.conftest import listening
from tests.brokers.conftest import subscribe
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)


def member_path(channel: str, user: str | None = None, events: bool = False) -> str:
    query = [("channel", channel)]
    if user is not None:
        query.append(("user", user))
    if events:
        query.append(("events", "1"))
    return "/sub?" + urllib.parse.urlencode(query)


def join(port: int, channel: str, user: str | None, events: bool = False) -> RawStream:
    stream = RawStream(port, member_path(channel, user, events), timeout=30)
    assert stream.status == 200
    return stream


def users(broker: gsse.Broker, channel: str) -> list[str]:
    return sorted(entry["user"] for entry in broker.presence(channel))


def test_presence_lists_named_streams_and_subscribers_counts_all(
    port: int, broker: gsse.Broker
) -> None:
    """presence() has each named stream's dict; subscribers() counts anonymous too."""
    assert broker.presence("room") == [] and broker.subscribers("room") == 0
    with join(port, "room", "ann"), join(port, "room", "bob"), join(port, "room", None):
        assert wait_until(lambda: broker.subscribers("room") == 3, 30)
        assert wait_until(lambda: users(broker, "room") == ["ann", "bob"], 30)
        assert broker.presence("room") in (
            [{"user": "ann"}, {"user": "bob"}],
            [{"user": "bob"}, {"user": "ann"}],
        )
        assert broker.subscribers("other") == 0
    # Streams that end leave: nothing is left behind.
    assert wait_until(lambda: broker.subscribers("room") == 0, 30)
    assert wait_until(lambda: broker.presence("room") == [], 30)


def test_presence_returns_fresh_dicts(port: int, broker: gsse.Broker) -> None:
    """Changing a returned dict changes nothing in the broker."""
    with join(port, "room", "ann"):
        assert wait_until(lambda: users(broker, "room") == ["ann"], 30)
        broker.presence("room")[0]["user"] = "mallory"
        assert broker.presence("room") == [{"user": "ann"}]


def test_a_watcher_gets_joins_then_each_change_once(
    port: int, broker: gsse.Broker
) -> None:
    """presence_events: a join per member (itself too), then joins and leaves."""
    with join(port, "room", "ann"):
        assert wait_until(lambda: users(broker, "room") == ["ann"], 30)
        with join(port, "room", "wes", events=True) as watcher:
            first = watcher.events(2, timeout=30)
            assert sorted((m.event, m.data) for m in first) == [
                ("join", '{"user":"ann"}'),
                ("join", '{"user":"wes"}'),
            ]
            anonymous = join(port, "room", None)  # anonymous: no event
            bob = join(port, "room", "bob")
            (joined,) = watcher.events(1, timeout=30)
            assert (joined.event, json.loads(joined.data)) == ("join", {"user": "bob"})
            bob.close()
            anonymous.close()
            (left,) = watcher.events(1, timeout=30)
            assert (left.event, json.loads(left.data)) == ("leave", {"user": "bob"})
            # Then a channel event: it arrives after, with nothing repeated.
            assert wait_until(lambda: broker.subscribers("room") == 2, 30)
            new_id = broker.publish("room", "hello")
            (message,) = watcher.events(1, timeout=30)
            assert (message.event, message.data, message.id) == (
                "message",
                "hello",
                new_id,
            )
            # join/leave frames carry no id: they never move Last-Event-ID.
            head = watcher.body.split(f"id: {new_id}".encode())[0]
            assert b"id:" not in head


def test_join_and_leave_are_never_replayed(port: int, broker: gsse.Broker) -> None:
    """A resume replays the channel's events only; joins are the members now."""
    start = broker.publish("room", "start")
    with join(port, "room", "wes", events=True) as watcher:
        assert [m.data for m in watcher.events(1, timeout=30)] == ['{"user":"wes"}']
        with join(port, "room", "bob"):
            assert watcher.events(1, timeout=30)[0].event == "join"
        assert watcher.events(1, timeout=30)[0].event == "leave"
        after = broker.publish("room", "after")
        assert watcher.events(1, timeout=30)[0].id == after
    assert wait_until(lambda: broker.subscribers("room") == 0, 30)
    headers = {"Last-Event-ID": start, "Connection": "close"}
    path = member_path("room", "wes", events=True)
    with RawStream(port, path, headers=headers, timeout=30) as again:
        got = again.events(2, timeout=30)
    assert [(m.event, m.data) for m in got] == [
        ("message", "after"),
        ("join", '{"user":"wes"}'),
    ] or [(m.event, m.data) for m in got] == [
        ("join", '{"user":"wes"}'),
        ("message", "after"),
    ]


def test_return_delivery_counts_the_streams_handed_the_event(
    port: int, broker: gsse.Broker
) -> None:
    """(id, n): n live streams got it; 0 when nobody listens; plain id otherwise."""
    new_id, handed = broker.publish("news", "nobody", return_delivery=True)
    assert isinstance(new_id, str) and handed == 0
    with (
        subscribe(port, broker, "news") as one,
        subscribe(port, broker, "news", "other") as two,
        subscribe(port, broker, "other"),
    ):
        listening(broker, "news", 2)
        assert wait_until(lambda: broker.subscribers("news") == 2, 30)
        new_id, handed = broker.publish("news", "counted", return_delivery=True)
        assert handed == 2
        assert one.events(1, timeout=30)[0].id == new_id
        assert two.events(1, timeout=30)[0].data == "counted"
        plain = broker.publish("news", "plain")
        assert isinstance(plain, str)


def test_bad_presence_arguments_say_what_to_fix(
    broker: gsse.Broker, make_broker: MakeBroker
) -> None:
    """A non-dict, a value JSON cannot encode, or events on two channels raise."""
    with pytest.raises(TypeError, match="presence must be a dict"):
        broker.subscriber("room", presence="bob")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON-serialisable"):
        broker.subscriber("room", presence={"when": object()})
    with pytest.raises(ValueError, match="over 4096"):
        broker.subscriber("room", presence={"x": "y" * 5000})
    with pytest.raises(ValueError, match="exactly one channel"):
        broker.subscriber("a", "b", presence_events=True)
    with pytest.raises(TypeError, match="presence_events must be"):
        broker.subscriber("a", presence_events="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="presence_ttl"):
        make_broker(presence_ttl=0)
    with pytest.raises(TypeError, match="presence_ttl"):
        make_broker(presence_ttl="30")
    with pytest.raises(ValueError, match="channel name"):
        broker.presence("")
    assert make_broker("?presence_ttl=5").subscribers("room") == 0


@pytest.mark.redis
def test_a_slow_process_makes_the_count_a_lower_bound(
    shared_redis: RedisServer, serve: Callable[..., Server]
) -> None:
    """A live process that never reports is waited for up to publish_timeout only."""
    client = redis.Redis.from_url(shared_redis.url)
    client.flushdb()
    broker = RedisBroker(shared_redis.url, history=50, publish_timeout=1.0)
    try:
        port = serve(make_app(broker)).port
        with subscribe(port, broker, "news") as stream:
            assert wait_until(lambda: broker.subscribers("news") == 1, 30)
            # 1. Another process, alive, with 3 streams on the channel, that
            #    is stalled: it will never read the event nor report.
            client.set("gsse:alive:stalled", b"1", ex=60)
            client.hset("gsse:count:news", "stalled", 3)
            assert broker.subscribers("news") == 4
            # 2. The count has this process's stream only: a lower bound.
            new_id, handed = broker.publish("news", "hi", return_delivery=True)
            assert handed == 1
            assert stream.events(1, timeout=30)[0].id == new_id
            # 3. Once the stalled process's liveness expires, it is dropped.
            client.delete("gsse:alive:stalled")
            assert broker.subscribers("news") == 1
            assert broker.publish("news", "again", return_delivery=True)[1] == 1
    finally:
        broker.close()
        client.close()
