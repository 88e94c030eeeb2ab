"""What only memory:// does, over real sockets: threads, hosts, memory bounds.

The contract both backends share is in tests/brokers/.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable

import pytest
from flask import Flask
from gevent.pywsgi import WSGIServer
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import gsse
from gsse import Server
from gsse.brokers.memory import MemoryBroker
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import wait_until

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)


def sub_path(*channels: str) -> str:
    return "/sub?" + urllib.parse.urlencode([("channel", c) for c in channels])


@pytest.fixture
def broker() -> gsse.Broker:
    return gsse.Broker.from_url("memory://", history=5)


@pytest.fixture
def port(serve: Serve, broker: gsse.Broker) -> int:
    return serve(make_app(broker)).port


def test_from_url_picks_the_backend_and_reads_gsse_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No URL means GSSE_BROKER, else memory://; bad URLs and history are refused."""
    monkeypatch.delenv("GSSE_BROKER", raising=False)
    assert isinstance(gsse.Broker.from_url(), MemoryBroker)
    monkeypatch.setenv("GSSE_BROKER", "memory://")
    assert gsse.Broker.from_url(history=3).history == 3
    with pytest.raises(ValueError, match="unknown broker URL"):
        gsse.Broker.from_url("kafka://x")
    with pytest.raises(ValueError, match="history"):
        gsse.Broker.from_url("memory://", history=0)
    with pytest.raises(TypeError, match="history"):
        gsse.Broker.from_url("memory://", history="10")  # type: ignore[arg-type]


def test_publish_from_a_thread_reaches_subscribers(
    port: int, broker: gsse.Broker
) -> None:
    """A real OS thread may publish; the write is handed to the event loop."""
    with RawStream(port, sub_path("t")) as stream:
        assert wait_until(lambda: broker.live_subscribers("t") == 1, timeout=5)
        ids: list[str] = []
        thread = threading.Thread(target=lambda: ids.append(broker.publish("t", "hi")))
        thread.start()
        assert wait_until(lambda: not thread.is_alive(), timeout=10)
        message = stream.events(1, timeout=10)[0]
    assert (message.data, message.id) == ("hi", ids[0])


def test_broker_stream_serves_a_flask_view(serve: Serve, broker: gsse.Broker) -> None:
    """broker.stream() is a response any WSGI framework can return."""
    flask_app = Flask(__name__)

    @flask_app.get("/news")
    def news() -> gsse.SSEResponse:
        return broker.stream("news", retry=500)

    port = serve(flask_app).port
    with RawStream(port, "/news") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert wait_until(lambda: broker.live_subscribers("news") == 1, timeout=5)
        new = broker.publish("news", "hello")
        message = stream.events(1, timeout=10)[0]
    assert (message.data, message.id) == ("hello", new)
    assert stream.body.startswith(b"retry: 500\n\n")


def test_broker_stream_under_a_plain_gevent_wsgi_server(broker: gsse.Broker) -> None:
    """Under gevent's own WSGIServer (no gsse server) a channel streams too."""
    flask_app = Flask(__name__)

    @flask_app.get("/news")
    def news() -> gsse.SSEResponse:
        return broker.stream("news")

    server = WSGIServer(("127.0.0.1", 0), flask_app, log=None)
    server.start()
    try:
        headers = {"Last-Event-ID": broker.publish("news", "first")}
        with RawStream(server.server_port, "/news", headers=headers) as stream:
            ids = [broker.publish("news", f"n{i}") for i in range(3)]
            assert [m.id for m in stream.events(3, timeout=10)] == ids
    finally:
        server.stop(timeout=1)


operations = st.lists(
    st.sampled_from(["a", "b", "close", "open"]), min_size=1, max_size=30
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_any_interleaving_of_publishes_and_reconnects_is_exact(
    serve: Serve, ops: list[str]
) -> None:
    """Publishes to two channels, while connected or not: each arrives once."""
    broker = gsse.Broker.from_url("memory://", history=100)
    port = serve(make_app(broker)).port
    a_and_b = sub_path("a", "b")
    published: list[str] = []
    received: list[str] = []
    # Start from a known position in both channels, so every open resumes.
    last_id = f"{broker.publish('a', 'start')},{broker.publish('b', 'start')}"

    def connect() -> RawStream:
        return RawStream(port, a_and_b, headers={"Last-Event-ID": last_id})

    def read_all(stream: RawStream) -> None:
        nonlocal last_id
        messages = stream.events(len(published) - len(received), timeout=10)
        received.extend(m.data for m in messages)
        last_id = messages[-1].id if messages else last_id

    stream: RawStream | None = connect()
    try:
        for op in ops:
            if op == "close" and stream is not None:
                read_all(stream)
                stream.close()
                stream = None
            elif op == "open" and stream is None:
                stream = connect()
            elif op in ("a", "b"):
                data = f"{op}{len(published)}"
                broker.publish(op, data)
                published.append(data)
        stream = stream or connect()
        read_all(stream)
        # Nothing more is waiting: the next message is a fresh one.
        broker.publish("a", "end")
        assert [m.data for m in stream.events(1, timeout=10)] == ["end"]
    finally:
        if stream is not None:
            stream.close()
    for channel in "ab":
        assert [d for d in received if d[0] == channel] == [
            d for d in published if d[0] == channel
        ]
    assert len(received) == len(published)


def test_a_thread_pool_callback_can_hand_its_stream_to_a_channel(
    serve: Serve, broker: gsse.Broker
) -> None:
    """A blocking=True callback sends first, then follows a channel."""
    app = gsse.App()

    def greet_then_follow(writer: gsse.SSEWriter) -> None:
        writer.send_event("hello", event="hello")
        broker.subscriber("pool")(writer)

    @app.route("/sub")
    def sub(event: gsse.Event) -> None:
        event.start_sse()
        event.set_stream_callback(greet_then_follow, blocking=True)

    port = serve(app).port
    with RawStream(port, "/sub") as stream:
        assert stream.events(1, timeout=10)[0].event == "hello"
        assert wait_until(lambda: broker.live_subscribers("pool") == 1, timeout=10)
        new = broker.publish("pool", "from the loop")
        message = stream.events(1, timeout=10)[0]
    assert (message.data, message.id) == ("from the loop", new)


def test_closed_streams_leave_nothing_behind(port: int, broker: gsse.Broker) -> None:
    """Streams that come and go leave no subscriber and no empty channel."""
    assert isinstance(broker, MemoryBroker)
    for i in range(30):
        with RawStream(port, sub_path(f"tmp{i % 3}", "other")) as stream:
            assert stream.status == 200
            assert wait_until(lambda: broker.live_subscribers("other") == 1, timeout=5)
        assert wait_until(lambda: broker.live_subscribers("other") == 0, timeout=5)
    assert broker.stats() == {
        "channels": 0,
        "channels_with_history": 0,
        "events": 0,
        "bytes": 0,
    }


# -- bounds on memory:// history (issue 16, item 4) ------------------------------


def test_many_random_channel_names_keep_history_bounded(serve: Serve) -> None:
    """40,000 publishes to random names keep events, bytes and channels bounded."""
    broker = gsse.Broker.from_url(
        "memory://?max_history_events=500&max_history_bytes=300000"
    )
    assert isinstance(broker, MemoryBroker)
    names = [f"room-{random.getrandbits(64):x}" for _ in range(40_000)]
    peak = {"events": 0, "bytes": 0, "channels": 0}
    ids = []
    for i, name in enumerate(names):
        ids.append(broker.publish(name, {"n": i, "pad": "p" * random.randrange(2000)}))
        stats = broker.stats()
        for field in peak:
            peak[field] = max(peak[field], stats[field])
    assert peak["events"] <= 500
    assert peak["bytes"] <= 300_000
    assert peak["channels"] <= 500
    stats = broker.stats()
    assert stats["channels"] == stats["channels_with_history"]
    # The newest name kept its event (its id resumes, live); the oldest lost it.
    port = serve(make_app(broker)).port
    headers = {"Last-Event-ID": ids[-1]}
    with RawStream(port, sub_path(names[-1]), headers=headers) as stream:
        assert wait_until(lambda: broker.live_subscribers(names[-1]) == 1, 10)
        new = broker.publish(names[-1], "next")
        assert [(m.event, m.id) for m in stream.events(1, timeout=10)] == [
            ("message", new)
        ]
    headers = {"Last-Event-ID": ids[0]}
    with RawStream(port, sub_path(names[0]), headers=headers) as stream:
        assert stream.events(1, timeout=10)[0].event == "reset"


def test_over_the_total_the_least_recently_published_channel_loses_first(
    serve: Serve,
) -> None:
    """The total trims the idlest channel's oldest events, and resuming there resets."""
    broker = gsse.Broker.from_url("memory://", max_history_events=6)
    assert isinstance(broker, MemoryBroker)
    quiet = [broker.publish("quiet", f"q{i}") for i in range(3)]
    busy = [broker.publish("busy", f"b{i}") for i in range(5)]
    # 8 events, 6 kept: "quiet" (published least recently) lost q0 and q1.
    assert broker.stats()["events"] == 6
    server_port = serve(make_app(broker)).port
    # q1, the last event dropped, is still a position: q2 alone is replayed.
    headers = {"Last-Event-ID": quiet[1]}
    with RawStream(server_port, sub_path("quiet"), headers=headers) as stream:
        assert [m.id for m in stream.events(1, timeout=10)] == [quiet[2]]
    assert wait_until(lambda: broker.live_subscribers("quiet") == 0, timeout=10)
    for _ in range(2):
        busy.append(broker.publish("busy", "more"))
    stats = broker.stats()  # "quiet" has nothing left: forgotten entirely
    assert (stats["channels"], stats["channels_with_history"]) == (1, 1)
    assert stats["events"] == 6
    for lost in quiet:
        headers = {"Last-Event-ID": lost}
        with RawStream(server_port, sub_path("quiet"), headers=headers) as stream:
            reset = stream.events(1, timeout=10)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data)["last_event_id"] == lost
    headers = {"Last-Event-ID": busy[1]}
    with RawStream(server_port, sub_path("busy"), headers=headers) as stream:
        replayed = stream.events(5, timeout=10)
    assert [m.id for m in replayed] == busy[2:]


def test_idle_channels_lose_their_history_after_the_ttl(serve: Serve) -> None:
    """A channel idle for history_idle_ttl loses its history; resuming gets reset."""
    broker = gsse.Broker.from_url("memory://", history_idle_ttl=1)
    assert isinstance(broker, MemoryBroker)
    broker.history_idle_ttl = 0.2  # keyword arguments take floats too
    old = [broker.publish("idle", f"i{i}") for i in range(3)]
    published = time.monotonic()  # no earlier than the broker's own record
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("idle"), headers={"Last-Event-ID": old[0]}) as s:
        assert [m.data for m in s.events(2, timeout=10)] == ["i1", "i2"]
    deadline = time.monotonic() + 10
    while time.monotonic() - published <= 0.25:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    broker.publish("other", "x")  # any publish (or subscribe) expires idle history
    stats = broker.stats()  # only "other" is left
    assert (stats["channels"], stats["events"]) == (1, 1)
    for lost in old:
        with RawStream(port, sub_path("idle"), headers={"Last-Event-ID": lost}) as s:
            reset = s.events(1, timeout=10)[0]
            assert reset.event == "reset"
            new = broker.publish("idle", "after")
            assert [m.id for m in s.events(1, timeout=10)] == [new]
    with pytest.raises(ValueError, match="history_idle_ttl"):
        gsse.Broker.from_url("memory://", history_idle_ttl=-1)
    with pytest.raises(TypeError, match="redis"):
        gsse.Broker.from_url("redis://127.0.0.1:1/0", max_history_events=5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        gsse.Broker.from_url("memory://", max_histroy_events=5)


def test_an_idle_channel_with_subscribers_keeps_its_position(serve: Serve) -> None:
    """Expiry drops history but a subscribed channel's newest id still resumes."""
    broker = gsse.Broker.from_url("memory://", history_idle_ttl=1)
    assert isinstance(broker, MemoryBroker)
    broker.history_idle_ttl = 0.2
    port = serve(make_app(broker)).port
    with RawStream(port, sub_path("kept")) as keeper:
        assert keeper.status == 200
        assert wait_until(lambda: broker.live_subscribers("kept") == 1, timeout=10)
        ids = [broker.publish("kept", f"k{i}") for i in range(3)]
        published = time.monotonic()  # no earlier than the broker's own record
        assert [m.id for m in keeper.events(3, timeout=10)] == ids
        deadline = time.monotonic() + 10
        while time.monotonic() - published <= 0.25:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        broker.publish("other", "x")
        stats = broker.stats()  # "kept" keeps its position, not its history
        assert (stats["channels"], stats["channels_with_history"]) == (2, 1)
        assert stats["events"] == 1
        with RawStream(port, sub_path("kept"), headers={"Last-Event-ID": ids[-1]}) as s:
            new = broker.publish("kept", "next")
            assert [(m.event, m.id) for m in s.events(1, timeout=10)] == [
                ("message", new)
            ]
        with RawStream(port, sub_path("kept"), headers={"Last-Event-ID": ids[0]}) as s:
            assert s.events(1, timeout=10)[0].event == "reset"
