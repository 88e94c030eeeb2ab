"""Channel limits over real sockets, on memory:// and redis://: event size,
channels per stream, and bad channel names (a 400, never a traceback)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask import request

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse.brokers.frames import ChannelRefused
from tests.apps.broker_app import make_app
from tests.brokers.conftest import MakeBroker
from tests.brokers.conftest import sub_path
from tests.helpers import RawStream
from tests.helpers import http_get

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(90)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("in_url", [False, True])
def test_publish_refuses_an_event_over_max_event_size(
    make_broker: MakeBroker, in_url: bool
) -> None:
    """An event over max_event_size (URL or keyword) raises, naming size and limit."""
    if in_url:
        broker = make_broker("?max_event_size=1000")
    else:
        broker = make_broker(max_event_size=1000)
    assert broker.max_event_size == 1000
    # gsse's URL options are not passed on to the backend's client.
    assert "max_event_size" not in getattr(broker, "url", "")
    broker.publish("c", "x" * 900)  # within the limit
    for data in ["x" * 2000, b"y" * 5000, {"k": "z" * 3000}, ["é" * 600]]:
        with pytest.raises(ValueError, match=r"max_event_size=1000") as info:
            broker.publish("c", data)
        assert "bytes encoded" in str(info.value) and "'c'" in str(info.value)


def test_max_event_size_defaults_to_1_mib_and_is_checked(
    make_broker: MakeBroker,
) -> None:
    """The default refuses 2 MiB and takes 512 KiB; bad limits are refused."""
    default = make_broker()
    with pytest.raises(ValueError, match=r"max_event_size=1048576"):
        default.publish("c", "x" * (2 << 20))
    default.publish("c", "x" * (512 << 10))
    for bad in [0, -1]:
        with pytest.raises(ValueError, match="max_event_size"):
            make_broker(max_event_size=bad)
    with pytest.raises(TypeError, match="max_event_size"):
        make_broker(max_event_size="1k")
    with pytest.raises(ValueError, match="must be an integer"):
        make_broker("?max_event_size=big")


@pytest.mark.parametrize("in_url", [False, True])
def test_more_channels_than_max_channels_get_400(
    serve: Serve,
    make_broker: MakeBroker,
    caplog: pytest.LogCaptureFixture,
    in_url: bool,
) -> None:
    """A stream asking for more than max_channels channels gets 400, no traceback."""
    broker = make_broker("?max_channels=3") if in_url else make_broker(max_channels=3)
    assert broker.max_channels == 3
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("a", "b", "c")) as stream:
        assert stream.status == 200
    for count in [4, 10, 150]:
        status, body = http_get(port, sub_path(*[f"ch{i}" for i in range(count)]))
        assert status == 400
        assert b"at most 3 channels" in body
    assert errors(caplog) == []


def test_max_channels_defaults_to_100(make_broker: MakeBroker) -> None:
    """subscriber() takes 100 channels by default and refuses 101 with a ValueError."""
    broker = make_broker()
    assert broker.max_channels == 100
    broker.subscriber(*[f"c{i}" for i in range(100)])
    with pytest.raises(ValueError, match="at most 100 channels"):
        broker.subscriber(*[f"c{i}" for i in range(101)])


def rooms_app(broker: gsse.Broker) -> App:
    """Like examples/chat.py, without its own check of the room name."""
    app = make_app(broker)

    @app.route("/rooms/<room>/events")
    def room(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, f"room:{event.path_params['room']}")

    @app.route("/one")
    def one(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, event.request.args.get("channel"))  # type: ignore[arg-type]

    return app


BAD_QUERIES = [
    "/sub",  # no channel at all
    "/sub?channel=",  # empty
    "/sub?channel=a%0Ab",
    "/sub?channel=a%0Db",
    "/sub?channel=a%00b",
    "/sub?channel=%1B%5B31m",
    "/sub?channel=" + "x" * 201,
    "/sub?channel=a&channel=a",  # twice
    "/one",  # None
    "/one?channel=%7F",
    "/rooms/%01/events",
    "/rooms/" + "y" * 300 + "/events",
]


def test_bad_or_missing_channel_names_get_400_without_traceback(
    serve: Serve, make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Every bad or missing channel name from a URL is a 400, never an ERROR log."""
    broker = make_broker()
    port = serve(rooms_app(broker)).port
    caplog.set_level(logging.INFO)
    for path in BAD_QUERIES:
        status, body = http_get(port, path)
        assert status == 400, path
        assert b"Traceback" not in body
    assert errors(caplog) == []
    assert [r for r in caplog.records if r.exc_info] == []
    with RawStream(port, "/rooms/lobby/events") as stream:
        assert stream.status == 200


def test_bad_channel_names_get_400_from_a_flask_view(
    serve: Serve, make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """broker.stream() under Flask answers 400 for a bad name, with no traceback."""
    broker = make_broker()
    flask_app = Flask(__name__)

    @flask_app.get("/news")
    def news() -> object:
        return broker.stream(*request.args.getlist("channel"))

    port = serve(flask_app).port
    for path in ["/news", "/news?channel=", "/news?channel=a%0Ab"]:
        assert http_get(port, path)[0] == 400, path
    assert errors(caplog) == []


def test_bad_names_and_data_in_code_raise(make_broker: MakeBroker) -> None:
    """In code, bad names are ValueErrors and names of the wrong type TypeErrors."""
    broker = make_broker()
    for bad in ["", "a\nb", "a\rb", "a\0b", "x" * 201]:
        with pytest.raises(ValueError):
            broker.publish(bad, "x")
        with pytest.raises(ValueError):
            broker.subscriber(bad)
    for wrong in [7, b"bytes", ["list"]]:
        with pytest.raises(TypeError) as info:
            broker.subscriber(wrong)  # type: ignore[arg-type]
        assert not isinstance(info.value, ChannelRefused)
    with pytest.raises(TypeError):
        broker.publish(7, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        broker.subscriber()
    with pytest.raises(ValueError, match="twice"):
        broker.subscriber("a", "a")
    with pytest.raises(ValueError, match="control characters"):
        broker.subscriber("a\nb")
    with pytest.raises(ValueError, match="control characters"):
        broker.publish("a\nb", "x")
    with pytest.raises(ValueError, match="needs data"):
        broker.publish("a", None)
    with pytest.raises(ValueError, match="CR or LF"):
        broker.publish("a", "x", event="a\nb")
