"""Channel limits on redis://: event size, channels per stream, foreign ids."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from collections.abc import Iterator

import gevent
import pytest

import gsse
from gsse import Server
from gsse.brokers.redis import RedisBroker
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)

Serve = Callable[..., Server]

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]


def sub_path(*channels: str) -> str:
    return "/sub?" + urllib.parse.urlencode([("channel", c) for c in channels])


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[gsse.Broker]:  # noqa: F811
    """A redis:// broker with limits given in its URL."""
    made = gsse.Broker.from_url(
        redis_server.url + "?max_event_size=2000&max_channels=2", history=50
    )
    yield made
    made.close()


def test_redis_publish_refuses_an_event_over_max_event_size(
    broker: gsse.Broker,
) -> None:
    """redis:// inherits the size check; gsse's URL options never reach redis-py."""
    assert isinstance(broker, RedisBroker)
    assert (broker.max_event_size, broker.max_channels) == (2000, 2)
    assert "max_event_size" not in broker.url
    broker.publish("c", "x" * 1900)
    with pytest.raises(ValueError, match=r"over max_event_size=2000"):
        broker.publish("c", "x" * 3000)
    with pytest.raises(ValueError, match=r"over max_event_size=2000"):
        broker.publish("c", {"big": ["é" * 1000]})


def test_redis_streams_over_max_channels_get_400(
    serve: Serve, broker: gsse.Broker
) -> None:
    """More channels than max_channels, or a bad name, is a 400 on redis:// too."""
    port = serve(make_app(broker)).port
    assert http_get(port, sub_path("a", "b", "c"))[0] == 400
    assert http_get(port, sub_path("a\nb"))[0] == 400
    assert http_get(port, "/sub")[0] == 400
    with RawStream(port, sub_path("a", "b")) as stream:
        assert stream.status == 200


def test_redis_an_id_from_another_channel_gets_reset(
    serve: Serve, broker: gsse.Broker
) -> None:
    """On redis:// too, an id this channel never issued gets reset, not a replay."""
    port = serve(make_app(broker)).port
    a_ids, b_ids = [], []
    for i in range(6):
        a_ids.append(broker.publish("a", f"a{i}"))
        gevent.sleep(0.003)  # apart, so the two channels' ids differ
        b_ids.append(broker.publish("b", f"b{i}"))
        gevent.sleep(0.003)
    foreign = [i for i in b_ids[:-1] if i not in a_ids]
    assert len(foreign) >= 3
    for other in foreign:
        with RawStream(port, sub_path("a"), headers={"Last-Event-ID": other}) as s:
            reset = s.events(1, timeout=10)[0]
            assert reset.event == "reset"
            assert json.loads(reset.data) == {"channel": "a", "last_event_id": other}
            assert reset.id == a_ids[-1]
    with RawStream(port, sub_path("a"), headers={"Last-Event-ID": a_ids[3]}) as s:
        assert [m.data for m in s.events(2, timeout=10)] == ["a4", "a5"]
