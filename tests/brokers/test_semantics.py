"""The channel contract (API.md §6) over real sockets, on memory:// and redis://.

Ids, live-only streams, replay after ``Last-Event-ID`` exactly once, several
channels per stream, the ``reset`` event, the history bound, UTF-8 ids and
slow subscribers: each test runs on both backends.
"""

from __future__ import annotations

import json

import gevent
import pytest

import gsse
from gsse.brokers.memory import MemoryBroker
from gsse.brokers.redis import RedisBroker
from tests.brokers.conftest import MakeBroker
from tests.brokers.conftest import id_key
from tests.brokers.conftest import listening
from tests.brokers.conftest import sub_path
from tests.brokers.conftest import subscribe
from tests.helpers import RawStream

pytestmark = pytest.mark.timeout(90)


def assert_reset(message: object, channel: str, sent: str, newest: str) -> None:
    """``message`` is the documented reset event for ``channel``."""
    assert (message.event, message.id) == ("reset", newest)  # type: ignore[attr-defined]
    data = json.loads(message.data)  # type: ignore[attr-defined]
    assert data == {"channel": channel, "last_event_id": sent}


def test_from_url_makes_the_backend_the_url_names(
    broker: gsse.Broker, broker_url: str
) -> None:
    """memory:// makes a MemoryBroker and redis:// a RedisBroker, with `history`."""
    expected = RedisBroker if broker_url.startswith("redis") else MemoryBroker
    assert isinstance(broker, expected)
    assert broker.history == 50


def test_publish_returns_increasing_ids_that_are_the_wire_ids(
    port: int, broker: gsse.Broker
) -> None:
    """Each live event arrives once, with the id publish returned; ids increase."""
    with subscribe(port, broker, "news") as stream:
        ids = [broker.publish("news", {"n": i}, event="headline") for i in range(20)]
        messages = stream.events(20, timeout=20)
    assert [id_key(i) for i in ids] == sorted({id_key(i) for i in ids})
    assert all(isinstance(i, str) for i in ids)
    assert [m.id for m in messages] == ids
    assert [json.loads(m.data) for m in messages] == [{"n": i} for i in range(20)]
    assert {m.event for m in messages} == {"headline"}


def test_without_last_event_id_a_stream_gets_live_events_only(
    port: int, broker: gsse.Broker
) -> None:
    """Events published before a stream opens are not sent to it without an id."""
    for i in range(3):
        broker.publish("news", f"old {i}")
    with subscribe(port, broker, "news") as stream:
        new = broker.publish("news", "new")
        message = stream.events(1, timeout=20)[0]
        assert (message.data, message.id) == ("new", new)
        assert b"old" not in stream.body


def test_replay_after_last_event_id_then_live_exactly_once(
    port: int, broker: gsse.Broker
) -> None:
    """Last-Event-ID replays what came after it, once, then live events follow."""
    ids = [broker.publish("c", f"m{i}") for i in range(4)]
    with subscribe(port, broker, "c", last_event_id=ids[1]) as stream:
        replayed = stream.events(2, timeout=20)
        assert [(m.data, m.id) for m in replayed] == [("m2", ids[2]), ("m3", ids[3])]
        live = broker.publish("c", "m4")
        assert [(m.data, m.id) for m in stream.events(1, timeout=20)] == [("m4", live)]
        assert stream.body.count(b"data: m") == 3
    # The newest id replays nothing and goes live.
    with subscribe(port, broker, "c", last_event_id=live) as stream:
        after = broker.publish("c", "m5")
        assert [(m.data, m.id) for m in stream.events(1, timeout=20)] == [("m5", after)]


def test_reconnects_during_concurrent_publishing_lose_and_repeat_nothing(
    serve: object, make_broker: MakeBroker, broker_url: str
) -> None:
    """Clients that keep reconnecting while a publisher runs see every id once."""
    from tests.apps.broker_app import make_app

    broker = make_broker(history=1000)
    publisher = make_broker(history=1000) if broker_url.startswith("redis") else broker
    port = serve(make_app(broker)).port  # type: ignore[operator]
    published = [publisher.publish("live", "start")]
    stop = False

    def publish() -> None:
        for i in range(800):
            if stop:
                return
            published.append(publisher.publish("live", i))
            gevent.sleep(0.001 * (i % 3))

    greenlet = gevent.spawn(publish)
    seen = [published[0]]
    try:
        for _ in range(80):
            headers = {"Last-Event-ID": seen[-1]}
            with RawStream(port, sub_path("live"), headers=headers) as stream:
                seen += [m.id for m in stream.events(3, timeout=20)]
            if len(seen) >= 200:
                break
    finally:
        stop = True
        greenlet.join(timeout=10)
    assert len(seen) >= 200
    assert seen == published[: len(seen)]


def test_several_channels_share_a_stream_and_its_composite_id_resumes_each(
    port: int, broker: gsse.Broker, broker_url: str
) -> None:
    """Two channels on one stream: its id names a position in each, and resumes."""
    with subscribe(port, broker, "a", "b") as stream:
        a1 = broker.publish("a", "a1")
        b1 = broker.publish("b", "b1")
        got = stream.events(2, timeout=20)
    if broker_url.startswith("redis+cluster"):
        # Two shards, one millisecond: either order (docs/channels.md).
        assert sorted(m.data for m in got) == ["a1", "b1"]
    else:
        assert [m.data for m in got] == ["a1", "b1"]
    assert got[1].id == f"{a1},{b1}"
    a2 = broker.publish("a", "a2")
    b2 = broker.publish("b", "b2")
    a3 = broker.publish("a", "a3")
    with subscribe(port, broker, "a", "b", last_event_id=got[1].id) as stream:
        replay = stream.events(3, timeout=20)
    # Each channel in its own order; the last id is the newest of each.
    assert [m.data for m in replay if m.data[0] == "a"] == ["a2", "a3"]
    assert [m.data for m in replay if m.data[0] == "b"] == ["b2"]
    assert replay[-1].id == f"{a3},{b2}"
    # One channel's position unknown: a reset for it alone, the other replays.
    with subscribe(port, broker, "a", "b", last_event_id=f"{a2},junk") as stream:
        first, second = stream.events(2, timeout=20)
    assert_reset(first, "b", f"{a2},junk", f"{a2},{b2}")
    assert (second.data, second.id) == ("a3", f"{a3},{b2}")


def test_a_composite_id_resumes_only_in_its_own_channel_order(
    port: int, broker: gsse.Broker
) -> None:
    """The same composite id for the channels in the other order resets both."""
    a, b = [], []
    for i in range(4):  # interleaved, apart: each channel's ids lie among the other's
        a.append(broker.publish("a", f"a{i}"))
        gevent.sleep(0.003)
        b.append(broker.publish("b", f"b{i}"))
        gevent.sleep(0.003)
    assert not set(a) & set(b)
    good = f"{a[1]},{b[1]}"
    with subscribe(port, broker, "a", "b", last_event_id=good) as stream:
        got = stream.events(4, timeout=20)
    assert [m.data for m in got] == ["a2", "b2", "a3", "b3"]
    with subscribe(port, broker, "b", "a", last_event_id=good) as stream:
        resets = stream.events(2, timeout=20)
        assert [m.event for m in resets] == ["reset", "reset"]
        assert [json.loads(m.data)["channel"] for m in resets] == ["b", "a"]
        assert resets[-1].id == f"{b[-1]},{a[-1]}"
        live = broker.publish("a", "live")
        assert [(m.data, m.id) for m in stream.events(1, timeout=20)] == [
            ("live", f"{b[-1]},{live}")
        ]


@pytest.mark.parametrize(
    "unknown", ["1-0", "5-5", "garbage", "99999999999999-0", "", "-", "1-2-3", ",,"]
)
def test_an_id_never_issued_gets_one_reset_then_live_events(
    port: int, broker: gsse.Broker, unknown: str
) -> None:
    """An unknown id is never ignored: the documented reset comes, then live ones."""
    ids = [broker.publish("c", f"m{i}") for i in range(3)]
    with subscribe(port, broker, "c", last_event_id=unknown) as stream:
        if unknown == "":  # an empty header is no Last-Event-ID: live only
            new = broker.publish("c", "after")
            assert [m.id for m in stream.events(1, timeout=20)] == [new]
            return
        assert_reset(stream.events(1, timeout=20)[0], "c", unknown, ids[-1])
        new = broker.publish("c", "after")
        after = stream.events(1, timeout=20)[0]
        assert (after.event, after.data, after.id) == ("message", "after", new)
        assert stream.body.count(b"event: reset") == 1


def test_an_id_from_another_channel_gets_reset_never_a_replay(
    port: int, broker: gsse.Broker
) -> None:
    """A Last-Event-ID this channel never issued gets reset, even inside its range."""
    a_ids, b_ids = [], []
    for i in range(4):
        a_ids.append(broker.publish("a", f"a{i}"))
        gevent.sleep(0.003)  # apart, so the two channels' ids differ
        b_ids.append(broker.publish("b", f"b{i}"))
        gevent.sleep(0.003)
    foreign = [i for i in b_ids[:-1] if i not in a_ids]
    assert len(foreign) == 3  # each lies between a's first and newest id
    for other in foreign:
        with subscribe(port, broker, "a", last_event_id=other) as stream:
            assert_reset(stream.events(1, timeout=20)[0], "a", other, a_ids[-1])
    with subscribe(port, broker, "a", last_event_id=a_ids[1]) as stream:
        assert [m.data for m in stream.events(2, timeout=20)] == ["a2", "a3"]


@pytest.mark.parametrize("history", [1, 5, 12])
def test_history_keeps_the_newest_events_and_older_ids_get_reset(
    serve: object, make_broker: MakeBroker, history: int
) -> None:
    """A channel keeps `history` events: the last id dropped resumes, older reset."""
    from tests.apps.broker_app import make_app

    broker = make_broker(history=history)
    port = serve(make_app(broker)).port  # type: ignore[operator]
    ids = [broker.publish("c", f"m{i}") for i in range(history + 4)]
    kept = [f"m{i}" for i in range(4, history + 4)]
    # The last event dropped is still a position: everything after it is kept.
    with subscribe(port, broker, "c", last_event_id=ids[3]) as stream:
        assert [m.data for m in stream.events(history, timeout=20)] == kept
    for old in ids[:3]:
        with subscribe(port, broker, "c", last_event_id=old) as stream:
            assert_reset(stream.events(1, timeout=20)[0], "c", old, ids[-1])
            listening(broker, "c")
            new = broker.publish("c", "after")
            assert [m.id for m in stream.events(1, timeout=20)] == [new]
            ids.append(new)
        listening(broker, "c", 0)


def test_a_reset_id_on_an_empty_channel_resumes_from_its_start(
    port: int, broker: gsse.Broker
) -> None:
    """A reset's id is a position too: resuming from it misses nothing."""
    # Another stream keeps the empty channel (and its position) alive: on
    # memory:// a channel with neither history nor subscribers is forgotten.
    with subscribe(port, broker, "e"):
        with subscribe(port, broker, "e", last_event_id="x") as stream:
            reset = stream.events(1, timeout=20)[0]
        assert_reset(reset, "e", "x", reset.id)
        listening(broker, "e")
        with RawStream(
            port, sub_path("e"), headers={"Last-Event-ID": reset.id}, timeout=30
        ) as stream:
            listening(broker, "e", 2)
            first = broker.publish("e", "first")
            message = stream.events(1, timeout=20)[0]
    assert (message.event, message.data, message.id) == ("message", "first", first)


IDS = ["é-1", "ü,ß-2", "日本-3", "😀", "a\u00a0b"]


def test_a_utf8_last_event_id_is_read_as_utf8_in_the_reset(
    port: int, broker: gsse.Broker
) -> None:
    """A non-ASCII Last-Event-ID (sent UTF-8) comes back whole in the reset."""
    newest = broker.publish("u", "x")
    for text in IDS:
        sent = text.encode("utf-8").decode("latin-1")  # the header's bytes
        with subscribe(port, broker, "u", last_event_id=sent) as stream:
            assert_reset(stream.events(1, timeout=20)[0], "u", text, newest)
        listening(broker, "u", 0)
    # Two channels: the id splits at the comma, and both parts are unknown.
    sent = "ü,ß-2".encode().decode("latin-1")
    with subscribe(port, broker, "u", "v", last_event_id=sent) as stream:
        first, second = stream.events(2, timeout=20)
    assert [json.loads(m.data)["channel"] for m in (first, second)] == ["u", "v"]
    assert {json.loads(m.data)["last_event_id"] for m in (first, second)} == {"ü,ß-2"}


def test_a_slow_subscriber_is_dropped_without_slowing_others(
    port: int, broker: gsse.Broker
) -> None:
    """A client that never reads is disconnected; a reading one gets everything."""
    count, payload = 800, "x" * 20_000
    slow = RawStream(port, sub_path("big"))
    fast = RawStream(port, sub_path("big"))
    try:
        listening(broker, "big", 2)
        before = gsse.metrics.STATS.disconnects.get("overflow", 0)
        reader = gevent.spawn(fast.events, count, timeout=60)
        for i in range(count):
            broker.publish("big", payload)
            if i % 10 == 0:
                gevent.sleep(0.001)
        listening(broker, "big", 1)
        messages = reader.get(timeout=65)
        assert len(messages) == count
        assert all(m.data == payload for m in messages)
        assert gsse.metrics.STATS.disconnects.get("overflow", 0) > before
    finally:
        slow.close()
        fast.close()


def test_live_subscribers_counts_this_processs_streams_per_channel(
    port: int, broker: gsse.Broker
) -> None:
    """live_subscribers() follows streams opening and closing, per channel."""
    assert broker.live_subscribers("a") == 0
    with subscribe(port, broker, "a", "b"):
        with subscribe(port, broker, "a"):
            listening(broker, "a", 2)
            assert broker.live_subscribers("b") == 1
            assert broker.live_subscribers("c") == 0
            if isinstance(broker, RedisBroker):
                assert broker.reachable
                assert broker.followed_channels() == 2
        listening(broker, "a", 1)
    listening(broker, "a", 0)
    listening(broker, "b", 0)
    if isinstance(broker, RedisBroker):
        assert broker.followed_channels() == 0
