"""Channel limits over real sockets: event size, slow readers, channel counts,
bad names (400), and ids from another channel (reset)."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable

import gevent
import pytest
from flask import Flask
from flask import request

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse.brokers.memory import MemoryBroker
from gsse.wire import EventStreamDecoder
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import StreamClosed
from tests.helpers import http_get
from tests.helpers import wait_until

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)


def sub_path(*channels: str) -> str:
    return "/sub?" + urllib.parse.urlencode([("channel", c) for c in channels])


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# -- item 5: one large event ---------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "memory://?max_event_size=1000"])
def test_publish_refuses_an_event_over_max_event_size(url: str) -> None:
    """An event over max_event_size raises a ValueError naming size and limit."""
    options = {} if "?" in url else {"max_event_size": 1000}
    broker = gsse.Broker.from_url(url, **options)  # type: ignore[arg-type]
    assert broker.max_event_size == 1000
    broker.publish("c", "x" * 900)  # within the limit
    for data in ["x" * 2000, b"y" * 5000, {"k": "z" * 3000}, ["é" * 600]]:
        with pytest.raises(ValueError, match=r"max_event_size=1000") as info:
            broker.publish("c", data)
        assert "bytes encoded" in str(info.value) and "'c'" in str(info.value)
    # The default is 1 MiB: 2 MiB is refused, 512 KiB is not.
    default = gsse.Broker.from_url("memory://")
    with pytest.raises(ValueError, match=r"max_event_size=1048576"):
        default.publish("c", "x" * (2 << 20))
    default.publish("c", "x" * (512 << 10))
    for bad in [0, -1]:
        with pytest.raises(ValueError, match="max_event_size"):
            gsse.Broker.from_url("memory://", max_event_size=bad)
    with pytest.raises(TypeError, match="max_event_size"):
        gsse.Broker.from_url("memory://", max_event_size="1k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be an integer"):
        gsse.Broker.from_url("memory://?max_event_size=big")


class SlowStream(RawStream):
    """A client that keeps reading, slowly: 32 KiB at a time, with pauses.

    Its small receive buffer, set before connecting, keeps the kernel from
    taking the event off the server's hands: the server's buffer holds it.
    """

    def __init__(self, port: int, path: str) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        self.sock = sock
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self._raw = b""
        self.body = b""
        self.ended = False
        self.cut = False
        self.decoder = EventStreamDecoder()
        self._read_head(10)

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        gevent.sleep(0.03)
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(32768)
        except ConnectionResetError:
            return b""


@pytest.mark.slow
def test_a_slow_reader_gets_an_event_larger_than_its_buffer_whole(
    serve: Serve,
) -> None:
    """A client slowly reading an event 128x its buffer stays; a stuck one goes."""
    broker = gsse.Broker.from_url("memory://", max_event_size=16 << 20)
    # Default 64 KiB buffer (1 MiB of fan-out overflow); send_timeout shorter
    # than the read takes (at least 4 s for the 4+ MiB the server's buffer
    # holds), so only time *without progress* may count. The
    # event is 8 MiB, as in the report: loopback kernel buffers take up to
    # 4 MiB of it, the server's buffer holds the rest.
    port = serve(make_app(broker), send_timeout=2.0).port
    big = "b" * (8 << 20)
    before = gsse.metrics.STATS.disconnects.get("overflow", 0)
    with SlowStream(port, sub_path("big")) as stream:
        assert stream.status == 200
        assert wait_until(lambda: _subscribers(broker, "big") == 1, timeout=5)
        first = broker.publish("big", big)
        after = broker.publish("big", "small")
        transport = next(iter(broker._channels["big"].subscribers)).transport
        try:
            messages = stream.events(2, timeout=50)
        except StreamClosed:
            pytest.fail(f"the reading client was dropped: {transport.close_reason}")
        assert [(m.id, len(m.data)) for m in messages] == [
            (first, len(big)),
            (after, 5),
        ]
        assert messages[0].data == big
        # Still connected and live.
        live = broker.publish("big", "live")
        assert [m.id for m in stream.events(1, timeout=10)] == [live]
        assert _subscribers(broker, "big") == 1
    assert gsse.metrics.STATS.disconnects.get("overflow", 0) == before
    # The allowance for one large event does not let a stuck client grow
    # without bound: one that reads nothing is still dropped.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(f"GET {sub_path('stuck')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert wait_until(lambda: _subscribers(broker, "stuck") == 1, timeout=5)
        broker.publish("stuck", big)
        for _ in range(5000):
            if _subscribers(broker, "stuck") == 0:
                break
            broker.publish("stuck", "x" * 4000)
            gevent.sleep(0)
        assert _subscribers(broker, "stuck") == 0
    finally:
        sock.close()


def _subscribers(broker: gsse.Broker, channel: str) -> int:
    assert isinstance(broker, MemoryBroker)
    state = broker._channels.get(channel)
    return len(state.subscribers) if state else 0


# -- item 11: channels per stream ----------------------------------------------


def test_more_channels_than_max_channels_get_400(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream asking for more than max_channels channels gets 400, no traceback."""
    broker = gsse.Broker.from_url("memory://?max_channels=3")
    assert broker.max_channels == 3
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("a", "b", "c")) as stream:
        assert stream.status == 200
    for count in [4, 10, 150]:
        names = [f"ch{i}" for i in range(count)]
        status, body = http_get(port, sub_path(*names))
        assert status == 400
        assert b"at most 3 channels" in body
    assert errors(caplog) == []
    default = gsse.Broker.from_url("memory://")
    assert default.max_channels == 100
    default.subscriber(*[f"c{i}" for i in range(100)])
    with pytest.raises(ValueError, match="at most 100 channels"):
        default.subscriber(*[f"c{i}" for i in range(101)])


# -- item 15: bad channel names from the URL -------------------------------------


def _rooms_app(broker: gsse.Broker) -> App:
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
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Every bad or missing channel name from a URL is a 400, never an ERROR log."""
    broker = gsse.Broker.from_url("memory://")
    port = serve(_rooms_app(broker)).port
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
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """broker.stream() under Flask answers 400 for a bad name, with no traceback."""
    broker = gsse.Broker.from_url("memory://")
    flask_app = Flask(__name__)

    @flask_app.get("/news")
    def news() -> object:
        return broker.stream(*request.args.getlist("channel"))

    port = serve(flask_app).port
    for path in ["/news", "/news?channel=", "/news?channel=a%0Ab"]:
        assert http_get(port, path)[0] == 400, path
    assert errors(caplog) == []


def test_programmer_errors_in_channel_names_still_raise() -> None:
    """A name of the wrong type is a bug, not a 400; bad names stay ValueErrors."""
    broker = gsse.Broker.from_url("memory://")
    for bad in [7, b"bytes", ["list"]]:
        with pytest.raises(TypeError) as info:
            broker.subscriber(bad)  # type: ignore[arg-type]
        assert not isinstance(info.value, gsse.brokers.frames.ChannelRefused)
    with pytest.raises(ValueError, match="control characters"):
        broker.subscriber("a\nb")
    with pytest.raises(ValueError, match="control characters"):
        broker.publish("a\nb", "x")


# -- item 17: ids from another channel -------------------------------------------


def test_an_id_from_another_channel_gets_reset(serve: Serve) -> None:
    """A Last-Event-ID this channel never issued gets reset, never a replay."""
    broker = gsse.Broker.from_url("memory://", history=50)
    port = serve(make_app(broker)).port
    a_ids, b_ids = [], []
    for i in range(6):
        a_ids.append(broker.publish("a", f"a{i}"))
        b_ids.append(broker.publish("b", f"b{i}"))
    assert not set(a_ids) & set(b_ids)
    # Each of b's ids lies between a's first and newest id: not a's, so reset.
    for foreign in b_ids[:-1]:
        headers = {"Last-Event-ID": foreign}
        with RawStream(port, sub_path("a"), headers=headers) as stream:
            reset = stream.events(1, timeout=10)[0]
            assert reset.event == "reset"
            assert json.loads(reset.data) == {"channel": "a", "last_event_id": foreign}
            assert reset.id == a_ids[-1]
    # a's own ids still resume exactly.
    with RawStream(port, sub_path("a"), headers={"Last-Event-ID": a_ids[2]}) as stream:
        assert [m.data for m in stream.events(3, timeout=10)] == ["a3", "a4", "a5"]


def test_multi_channel_ids_resume_only_in_their_own_order(serve: Serve) -> None:
    """A multi-channel id resumes each channel only from that channel's own id."""
    broker = gsse.Broker.from_url("memory://", history=50)
    port = serve(make_app(broker)).port
    a, b = [], []
    for i in range(4):  # interleaved: each channel's ids lie among the other's
        a.append(broker.publish("a", f"a{i}"))
        b.append(broker.publish("b", f"b{i}"))
    good = f"{a[1]},{b[1]}"
    with RawStream(port, sub_path("a", "b"), headers={"Last-Event-ID": good}) as s:
        assert [m.data for m in s.events(4, timeout=10)] == ["a2", "b2", "a3", "b3"]
    # The same id for the channels in the other order: neither is resumable.
    with RawStream(port, sub_path("b", "a"), headers={"Last-Event-ID": good}) as s:
        resets = s.events(2, timeout=10)
        assert [m.event for m in resets] == ["reset", "reset"]
        assert [json.loads(m.data)["channel"] for m in resets] == ["b", "a"]
        assert resets[-1].id == f"{b[-1]},{a[-1]}"
        live = broker.publish("a", "live")
        assert [m.data for m in s.events(1, timeout=10)] == ["live"]
        assert live in s.body.decode()
