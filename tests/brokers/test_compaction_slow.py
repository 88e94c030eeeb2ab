"""Conflation on compacted (keyed) channels, on all four backends.

A slow subscriber of a keyed channel has superseded events dropped from its
queue instead of being disconnected; unkeyed events still overflow it, and
a client that reads nothing is still closed (issue 20, item 4).
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

import gsse
from gsse.metrics import STATS
from tests.apps.broker_app import make_app
from tests.brokers.conftest import MakeBroker
from tests.brokers.conftest import listening
from tests.brokers.conftest import sub_path
from tests.helpers import RawStream

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def roomy(
    serve: Callable[..., gsse.Server], make_broker: MakeBroker, broker_url: str
) -> tuple[int, gsse.Broker, gsse.Broker]:
    """Port, broker and publisher keeping 5000 events: a burst is never trimmed.

    On Redis a burst longer than ``history``, published faster than the
    reader reads, is trimmed before it is read, and its streams get a
    ``reset`` (documented): these tests are about conflation, not that.
    """
    broker = make_broker(history=5000)
    redis = broker_url.startswith("redis")
    publisher = make_broker(history=5000) if redis else broker
    return serve(make_app(broker)).port, broker, publisher


def test_a_slow_subscriber_of_a_keyed_channel_stays_and_sees_current_values(
    roomy: tuple[int, gsse.Broker, gsse.Broker],
) -> None:
    """Conflation: superseded events are dropped from a slow client's queue."""
    port, broker, publisher = roomy
    keys, rounds, payload = 5, 300, "x" * 20_000
    slow = RawStream(port, sub_path("keyed"), timeout=30)
    try:
        listening(broker, "keyed", 1)
        before = STATS.disconnects.get("overflow", 0)
        for n in range(rounds):
            for k in range(keys):
                publisher.publish("keyed", f"{k} {n} {payload}", key=f"k{k}")
            if n % 10 == 0:
                gevent.sleep(0.001)
        end = publisher.publish("keyed", "end")
        messages: list[gsse.client.Message] = []
        while not messages or messages[-1].data != "end":
            messages += slow.events(1, timeout=60)
            assert len(messages) <= keys * rounds + 1
        assert messages[-1].id == end
        seen: dict[str, list[int]] = {}
        for message in messages[:-1]:
            k, n, _ = message.data.split(" ", 2)
            seen.setdefault(k, []).append(int(n))
        assert {k: v[-1] for k, v in seen.items()} == {
            str(k): rounds - 1 for k in range(keys)
        }
        assert all(v == sorted(set(v)) for v in seen.values())
        assert len(messages) < keys * rounds  # superseded ones were dropped
        assert broker.live_subscribers("keyed") == 1
        assert STATS.disconnects.get("overflow", 0) == before
    finally:
        slow.close()


def test_a_slow_subscriber_is_dropped_when_unkeyed_events_overflow(
    roomy: tuple[int, gsse.Broker, gsse.Broker],
) -> None:
    """Keyed events conflate; unkeyed ones still count towards the overflow."""
    port, broker, publisher = roomy
    payload = "x" * 20_000
    slow = RawStream(port, sub_path("mixed"), timeout=30)
    try:
        listening(broker, "mixed", 1)
        before = STATS.disconnects.get("overflow", 0)
        for n in range(800):
            publisher.publish("mixed", payload, key=f"k{n % 3}")
            publisher.publish("mixed", payload)
            if n % 10 == 0:
                gevent.sleep(0.001)
        listening(broker, "mixed", 0)
        assert STATS.disconnects.get("overflow", 0) > before
    finally:
        slow.close()


def test_a_slow_subscriber_of_several_keyed_channels_keeps_exact_positions(
    roomy: tuple[int, gsse.Broker, gsse.Broker],
) -> None:
    """Held events carry the stream's position as the client knows it."""
    port, broker, publisher = roomy
    payload = "x" * 20_000
    slow = RawStream(port, sub_path("k1", "k2"), timeout=30)
    try:
        listening(broker, "k1", 1)
        listening(broker, "k2", 1)
        newest: dict[str, str] = {}
        for n in range(400):
            for channel in ("k1", "k2"):
                newest[channel] = publisher.publish(
                    channel, f"{channel} {n} {payload}", key="only"
                )
            if n % 10 == 0:
                gevent.sleep(0.001)
        end = publisher.publish("k1", "end")
        messages: list[gsse.client.Message] = []

        def seen(data: str) -> bool:
            return any(m.data.startswith(data) for m in messages)

        # (On Redis, "end" and k2's last event may share an id, each in its
        # own Stream, and then arrive in either order.)
        while not (seen("end") and seen("k2 399 ")):
            messages += slow.events(1, timeout=60)
            assert len(messages) <= 801
        assert len(messages) < 801  # conflated
        assert messages[-1].id == f"{end},{newest['k2']}"
        last = {m.data.split(" ")[0]: m for m in messages if m.data != "end"}
        assert last["k1"].data.split(" ")[1] == last["k2"].data.split(" ")[1] == "399"
        previous = (0, 0, 0, 0)
        for message in messages:  # positions never go back, in either channel
            k1, k2 = message.id.split(",")
            position = (*map(int, k1.split("-")), *map(int, k2.split("-")))
            assert position[:2] >= previous[:2] and position[2:] >= previous[2:]
            previous = position
    finally:
        slow.close()


def test_a_keyed_subscriber_that_reads_nothing_is_closed_after_send_timeout(
    serve: Callable[..., gsse.Server], broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    """Conflation keeps slow readers, not clients that read nothing at all."""
    port = serve(make_app(broker), send_timeout=1.0).port
    stuck = RawStream(port, sub_path("stuck"), timeout=30)
    try:
        listening(broker, "stuck", 1)
        before = STATS.disconnects.get("send_timeout", 0)
        for n in range(200):
            publisher.publish("stuck", f"{n} {'x' * 20_000}", key=f"k{n % 4}")
            if n % 10 == 0:
                gevent.sleep(0.001)
        listening(broker, "stuck", 0)
        assert STATS.disconnects.get("send_timeout", 0) > before
    finally:
        stuck.close()
