"""Property tests of compacted channels, on all four backends (issue 20).

For any sequence of keyed and unkeyed publishes and any resume point, a
stream sees, after the resume point, every unkeyed event and the newest
value of every key, exactly once each, in publish order; a snapshot stream
sees the newest value of every key, in publish order. Then live events.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import gsse
from tests.brokers.conftest import sub_path
from tests.helpers import RawStream
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(600)

_channels = itertools.count()

#: Publishes: a key (one of a few, so they supersede each other) or None.
publishes = st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=15)


def expected_after(keys: list[str | None], resume: int) -> list[int]:
    """Indices a stream resuming after ``resume`` must get, in order."""
    newest = {key: i for i, key in enumerate(keys) if key is not None}
    return [
        i
        for i in range(resume + 1, len(keys))
        if keys[i] is None or newest[keys[i]] == i
    ]


def expected_snapshot(keys: list[str | None]) -> list[int]:
    return sorted({key: i for i, key in enumerate(keys) if key is not None}.values())


def read_then_live(
    port: int,
    broker: gsse.Broker,
    publisher: gsse.Broker,
    path: str,
    channel: str,
    headers: dict[str, str],
    count: int,
) -> list[tuple[str, str]]:
    """``count`` events from a new stream, then one live event: (id, data)."""
    with RawStream(port, path, headers=headers, timeout=30) as stream:
        got = stream.events(count, timeout=20) if count else []
        assert wait_until(lambda: broker.live_subscribers(channel) == 1, 20)
        live = publisher.publish(channel, "live")
        got += stream.events(1, timeout=20)
        assert got[-1].id == live  # nothing more came before it
    return [(m.id, m.data) for m in got[:-1]]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(keys=publishes, data=st.data())
def test_resume_sees_every_key_newest_value_once_in_order(
    port: int,
    broker: gsse.Broker,
    publisher: gsse.Broker,
    keys: list[str | None],
    data: st.DataObject,
) -> None:
    channel = f"prop{next(_channels)}"
    ids = [publisher.publish(channel, str(i), key=k) for i, k in enumerate(keys)]
    resume = data.draw(st.integers(0, len(keys) - 1), label="resume after")
    snapshot = data.draw(st.booleans(), label="snapshot=True")
    expected = expected_after(keys, resume)
    path = sub_path(channel) + ("&snapshot=1" if snapshot else "")
    got = read_then_live(
        port,
        broker,
        publisher,
        path,
        channel,
        {"Last-Event-ID": ids[resume]},
        len(expected),
    )
    assert got == [(ids[i], str(i)) for i in expected]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(keys=publishes)
def test_snapshot_sees_every_key_newest_value_once_in_order(
    port: int, broker: gsse.Broker, publisher: gsse.Broker, keys: list[str | None]
) -> None:
    channel = f"snap{next(_channels)}"
    ids = [publisher.publish(channel, str(i), key=k) for i, k in enumerate(keys)]
    expected = expected_snapshot(keys)
    path = sub_path(channel) + "&snapshot=1"
    got = read_then_live(port, broker, publisher, path, channel, {}, len(expected))
    assert got == [(ids[i], str(i)) for i in expected]
