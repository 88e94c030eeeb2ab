"""Broker.publish_many: several events in one call (one pipeline on Redis)."""

from __future__ import annotations

import json

import pytest

import gsse
from tests.brokers.conftest import id_key
from tests.brokers.conftest import subscribe

pytestmark = pytest.mark.timeout(90)


def test_publish_many_publishes_in_order_with_increasing_ids(
    port: int, broker: gsse.Broker, publisher: gsse.Broker
) -> None:
    """Each event once, in the order given; ids as publish's, rising per channel."""
    with subscribe(port, broker, "a") as a, subscribe(port, broker, "b") as b:
        items = [("a" if i % 3 else "b", {"i": i}, "tick") for i in range(30)]
        ids = publisher.publish_many(items)  # type: ignore[arg-type]
        got_a = a.events(20, timeout=20)
        got_b = b.events(10, timeout=20)
    assert len(ids) == 30
    for channel in "ab":  # ids increase per channel
        mine = [
            id_key(i) for i, item in zip(ids, items, strict=True) if item[0] == channel
        ]
        assert mine == sorted(set(mine))
    assert [json.loads(m.data)["i"] for m in got_a] == [i for i in range(30) if i % 3]
    assert [json.loads(m.data)["i"] for m in got_b] == list(range(0, 30, 3))
    assert [m.id for m in got_a + got_b] == [ids[i] for i in range(30) if i % 3] + [
        ids[i] for i in range(0, 30, 3)
    ]
    assert publisher.publish_many([]) == []


def test_publish_many_checks_every_event_before_sending_any(
    broker: gsse.Broker,
) -> None:
    with pytest.raises(ValueError):
        broker.publish_many([("a", "fine", None), ("a", None, None)])
