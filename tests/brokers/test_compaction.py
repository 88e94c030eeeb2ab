"""Compacted (keyed) channels and history by age, on all four backends.

``publish(..., key=)``, ``snapshot=True``, replay without superseded events
and ``history_ttl`` (issue 20, items 3 and 4; conflation is in
test_compaction_slow.py): each test runs on both backends, over real sockets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

import gsse
from gsse.brokers.memory import MemoryBroker
from tests.apps.broker_app import make_app
from tests.brokers.conftest import MakeBroker
from tests.brokers.conftest import listening
from tests.brokers.conftest import sub_path
from tests.brokers.test_semantics import assert_reset
from tests.helpers import RawStream
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(120)


def open_snapshot(
    port: int, broker: gsse.Broker, *channels: str, last_event_id: str | None = None
) -> RawStream:
    """A ``snapshot=True`` stream of ``channels``, live on each."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    stream = RawStream(
        port, sub_path(*channels) + "&snapshot=1", headers=headers, timeout=30
    )
    assert stream.status == 200
    for channel in channels:
        assert wait_until(lambda c=channel: broker.live_subscribers(c) >= 1, 20)
    return stream


def test_snapshot_sends_the_newest_event_of_every_key_then_live_events(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    """Newest per key, in publish order, without unkeyed events; then live."""
    publisher.publish("prices", {"AAPL": 1}, key="AAPL")
    msft = publisher.publish("prices", {"MSFT": 1}, key="MSFT")
    publisher.publish("prices", "news, not a price")
    aapl = publisher.publish("prices", {"AAPL": 2}, key="AAPL", event="price")
    with open_snapshot(port, broker, "prices") as stream:
        first = stream.events(2, timeout=20)
        assert [(m.id, json.loads(m.data)) for m in first] == [
            (msft, {"MSFT": 1}),
            (aapl, {"AAPL": 2}),
        ]
        assert first[1].event == "price"
        live = publisher.publish("prices", {"MSFT": 2}, key="MSFT")
        (message,) = stream.events(1, timeout=20)
        assert (message.id, json.loads(message.data)) == (live, {"MSFT": 2})
        assert b'AAPL": 1' not in stream.body and b"news" not in stream.body


def test_snapshot_then_live_has_no_gap_and_no_duplicate(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    """Events published while streams open arrive once, after the snapshot."""
    for key in "abcde":
        publisher.publish("p", f"{key}0", key=key)
    streams = []
    sent: list[str] = []
    try:
        for n in range(1, 6):
            streams.append(RawStream(port, sub_path("p") + "&snapshot=1", timeout=30))
            sent.append(publisher.publish("p", f"a{n}", key="a"))
        listening(broker, "p", 5)
        sent.append(publisher.publish("p", "end"))
        for n, stream in enumerate(streams):
            messages: list[gsse.client.Message] = []
            while not messages or messages[-1].data != "end":
                messages += stream.events(1, timeout=20)
                assert len(messages) < 20
            ids = [m.id for m in messages]
            assert len(ids) == len(set(ids))
            assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
            values = [m.data for m in messages]
            # Every key's newest value when it opened, then every later one.
            assert set("bcde") <= {v[0] for v in values}
            # Its snapshot holds some a<k> (k >= n: when it was read is the
            # server's business), then every later a, once each: no gap.
            first = int(next(v for v in values if v.startswith("a"))[1])
            assert first >= n
            assert [v for v in values if v.startswith("a")] == [
                f"a{k}" for k in range(first, 6)
            ]
    finally:
        for stream in streams:
            stream.close()


def test_resume_skips_superseded_events(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    """Last-Event-ID replays what was missed, without events superseded since."""
    a1 = publisher.publish("p", "a1", key="a")
    b1 = publisher.publish("p", "b1", key="b")
    u1 = publisher.publish("p", "u1")
    publisher.publish("p", "a2", key="a")
    a3 = publisher.publish("p", "a3", key="a")
    c1 = publisher.publish("p", "c1", key="c")
    # Resuming from an event superseded since is fine: the channel issued it.
    streams = [
        RawStream(port, sub_path("p"), headers={"Last-Event-ID": resume})
        for resume in (a1, b1)
    ]
    try:
        listening(broker, "p", 2)
        missed = [(b1, "b1"), (u1, "u1"), (a3, "a3"), (c1, "c1")]
        for stream, expected in zip(streams, (missed, missed[1:]), strict=True):
            got = stream.events(len(expected), timeout=20)
            assert [(m.id, m.data) for m in got] == expected
        end = publisher.publish("p", "end")
        for stream in streams:
            assert [m.id for m in stream.events(1, timeout=20)] == [end]
    finally:
        for stream in streams:
            stream.close()


def test_snapshot_with_a_resumable_id_gets_the_replay_only(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    a1 = publisher.publish("p", "a1", key="a")
    b1 = publisher.publish("p", "b1", key="b")
    with open_snapshot(port, broker, "p", last_event_id=a1) as stream:
        assert [(m.id, m.data) for m in stream.events(1, timeout=20)] == [(b1, "b1")]
        end = publisher.publish("p", "end")
        assert [m.id for m in stream.events(1, timeout=20)] == [end]
        assert b"a1" not in stream.body


def test_snapshot_after_a_reset_makes_the_client_whole(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    """An id the channel cannot resume gets reset, then the snapshot."""
    a1 = publisher.publish("p", "a1", key="a")
    last = publisher.publish("p", "u1")
    with open_snapshot(port, broker, "p", last_event_id="1-1") as stream:
        reset, snap = stream.events(2, timeout=20)
        assert_reset(reset, "p", "1-1", last)
        assert (snap.id, snap.data) == (a1, "a1")
        # The snapshot is older than the channel's newest id: an id-only
        # frame moves the client's position there (no replay of u1 later).
        stream.read_until(f"id: {last}\n\n".encode(), timeout=20)


def test_id_only_frame_after_a_snapshot_older_than_the_newest_event(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    a1 = publisher.publish("p", "a1", key="a")
    last = publisher.publish("p", "unkeyed")
    with open_snapshot(port, broker, "p") as stream:
        (snap,) = stream.events(1, timeout=20)
        assert (snap.id, snap.data) == (a1, "a1")
        stream.read_until(f"id: {last}\n\n".encode(), timeout=20)
        new = publisher.publish("p", "new")
        assert [m.id for m in stream.events(1, timeout=20)] == [new]


def test_snapshot_of_several_channels_and_of_an_empty_one(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    x = publisher.publish("x", "x1", key="k")
    with open_snapshot(port, broker, "x", "empty") as stream:
        (snap,) = stream.events(1, timeout=20)
        assert snap.data == "x1" and snap.id.startswith(x + ",")
        new = publisher.publish("empty", "e1", key="k")
        (live,) = stream.events(1, timeout=20)
        assert live.data == "e1" and live.id.endswith("," + new)


def test_history_ttl_drops_old_events_and_resets_older_ids(
    serve: Callable[..., gsse.Server], make_broker: MakeBroker
) -> None:
    """Past history_ttl an event is neither replayed nor kept: reset, as by count."""
    aged = make_broker(history=50, history_ttl=0.5)
    port = serve(make_app(aged)).port
    old = aged.publish("t", "old")
    older_key = aged.publish("t", "k-old", key="gone")
    time.sleep(0.7)  # the ttl passes (not a timing assertion)
    # Nothing published since: the channel was forgotten with its history.
    with RawStream(port, sub_path("t"), headers={"Last-Event-ID": old}) as stream:
        reset = stream.events(1, timeout=20)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data) == {"channel": "t", "last_event_id": old}
    fresh = aged.publish("t", "fresh", key="k")
    with RawStream(port, sub_path("t"), headers={"Last-Event-ID": old}) as stream:
        assert_reset(stream.events(1, timeout=20)[0], "t", old, fresh)
    with RawStream(
        port, sub_path("t") + "&snapshot=1", headers={"Last-Event-ID": older_key}
    ) as stream:
        reset, snap = stream.events(2, timeout=20)
        assert reset.event == "reset"
        assert (snap.id, snap.data) == (fresh, "fresh")  # the expired key is gone
    newer = aged.publish("t", "newer")
    with RawStream(port, sub_path("t"), headers={"Last-Event-ID": fresh}) as stream:
        assert [(m.id, m.data) for m in stream.events(1, timeout=20)] == [
            (newer, "newer")
        ]


def test_bad_keys_and_ttls_say_what_to_fix(make_broker: MakeBroker) -> None:
    broker = make_broker()
    with pytest.raises(TypeError, match="key"):
        broker.publish("c", "x", key=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        broker.publish("c", "x", key="")
    with pytest.raises(ValueError, match="control"):
        broker.publish("c", "x", key="a\nb")
    with pytest.raises(ValueError, match="history_ttl"):
        make_broker(history_ttl=0)
    with pytest.raises(TypeError, match="history_ttl"):
        make_broker(history_ttl="5")
    assert make_broker("?history_ttl=2.5").history_ttl == 2.5
    assert make_broker().history_ttl is None


def test_history_ttl_is_checked_when_reading_too(
    serve: Callable[..., gsse.Server], make_broker: MakeBroker
) -> None:
    """Events past the ttl that no publish trimmed yet are not replayed either."""
    aged = make_broker(history=50, history_ttl=1.0)
    port = serve(make_app(aged)).port
    first = aged.publish("r", "first")
    aged.publish("r", "second")
    time.sleep(0.6)
    aged.publish("r", "third")  # "first" and "second" are not 1 s old yet
    time.sleep(0.6)  # now they are (not a timing assertion)
    with RawStream(port, sub_path("r"), headers={"Last-Event-ID": first}) as stream:
        reset = stream.events(1, timeout=20)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data) == {"channel": "r", "last_event_id": first}
        assert b"second" not in stream.body and b"third" not in stream.body


def test_keyed_publish_counts_deliveries_to_snapshot_streams_with_presence(
    port: int, broker: gsse.Broker
) -> None:
    """Issue 20 items 1-4 together: presence, snapshot, key and return_delivery."""
    first = broker.publish("prices", "1", key="AAPL")
    path = sub_path("prices") + "&snapshot=1&user=bob"
    with RawStream(port, path, timeout=30) as stream:
        assert stream.status == 200
        (snap,) = stream.events(1, timeout=20)
        assert (snap.id, snap.data) == (first, "1")
        listening(broker, "prices", 1)
        assert wait_until(lambda: broker.presence("prices") == [{"user": "bob"}], 30)
        new_id, handed = broker.publish("prices", "2", key="AAPL", return_delivery=True)
        assert handed == 1
        (message,) = stream.events(1, timeout=20)
        assert (message.id, message.data) == (new_id, "2")


def test_memory_counts_the_newest_events_per_key_within_its_totals() -> None:
    """memory://: keyed state is bounded by the totals and expires with the ttl."""
    broker = MemoryBroker(history=3, max_history_events=10)
    for n in range(50):
        broker.publish("p", f"v{n}", key=f"k{n % 4}")
    # 3 in history, 4 newest per key: 7 (superseded ones were released).
    assert broker.stats()["events"] == 7
    assert [f.raw for f in broker._channels["p"].keyed.values()] == [
        b"data: v46\n\n",
        b"data: v47\n\n",
        b"data: v48\n\n",
        b"data: v49\n\n",
    ]
    for n in range(20):
        broker.publish("other", f"o{n}")
    stats = broker.stats()
    assert stats["events"] <= 10
    aged = MemoryBroker(history_ttl=0.2)
    aged.publish("t", "x", key="k")
    time.sleep(0.3)  # past the ttl (not a timing assertion)
    aged.publish("u", "y")
    stats = aged.stats()  # "t" and its key are forgotten; "u" is all there is
    assert (stats["channels"], stats["events"]) == (1, 1)
