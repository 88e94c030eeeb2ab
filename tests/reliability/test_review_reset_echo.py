"""The ``reset`` events a stream opens with: bounded, and none skipped.

A stream of N channels gets one ``reset`` per channel; each echoed the
header whole, so one request with a header near the server's size limit
came back about a hundred times larger. Each also carried the stream's new
position as its id, so a client cut off after the first came back with an
id that skipped the others' resets: events lost silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gsse import App
from gsse import Broker
from gsse import Event
from gsse import Server
from gsse.brokers.frames import MAX_ECHOED_ID
from tests.helpers import RawStream

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

CHANNELS = 100


def subscribe_app(broker: Broker) -> App:
    app = App()

    @app.route("/sub")
    def sub(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, *event.request.args.getlist("c"))

    return app


@pytest.mark.parametrize("length", [MAX_ECHOED_ID + 1, 4096, 30_000])
@pytest.mark.parametrize("channels", [1, CHANNELS])
def test_a_long_last_event_id_is_echoed_cut(
    serve: Serve, length: int, channels: int
) -> None:
    """Every reset's last_event_id is at most MAX_ECHOED_ID characters plus '...'."""
    broker = Broker.from_url("memory://")
    server = serve(subscribe_app(broker))
    query = "&".join(f"c=c{i}" for i in range(channels))
    sent = ("7" * 13 + "-0,") * (length // 16) + "x" * (length % 16)
    with RawStream(
        server.port, f"/sub?{query}", headers={"Last-Event-ID": sent}
    ) as stream:
        resets = stream.events(channels, timeout=20)
    assert [m.event for m in resets] == ["reset"] * channels
    assert [json.loads(m.data)["channel"] for m in resets] == [
        f"c{i}" for i in range(channels)
    ]
    for message in resets:
        echoed = json.loads(message.data)["last_event_id"]
        assert echoed == sent[:MAX_ECHOED_ID] + "..."


def test_a_short_last_event_id_is_echoed_whole(serve: Serve) -> None:
    """An id up to the bound comes back exactly as sent, as documented."""
    broker = Broker.from_url("memory://")
    server = serve(subscribe_app(broker))
    sent = "é" * MAX_ECHOED_ID
    with RawStream(
        server.port,
        "/sub?c=a",
        headers={"Last-Event-ID": sent.encode().decode("latin-1")},
    ) as stream:
        (reset,) = stream.events(1)
    assert json.loads(reset.data) == {"channel": "a", "last_event_id": sent}


def test_a_client_cut_off_between_resets_gets_the_missed_ones_again(
    serve: Serve,
) -> None:
    """Only the last opening reset moves the stream's id, so none is skipped."""
    broker = Broker.from_url("memory://")
    for i in range(3):
        broker.publish(f"c{i}", "before")
    server = serve(subscribe_app(broker))
    stale = "1-0,1-0,1-0"
    with RawStream(
        server.port, "/sub?c=c0&c=c1&c=c2", headers={"Last-Event-ID": stale}
    ) as stream:
        resets = stream.events(3)
    assert [json.loads(m.data)["channel"] for m in resets] == ["c0", "c1", "c2"]
    # Cut off after the first reset: the browser resumes with the id it holds.
    resume = resets[0].id or stale
    with RawStream(
        server.port, "/sub?c=c0&c=c1&c=c2", headers={"Last-Event-ID": resume}
    ) as stream:
        again = stream.events(3)
    assert [json.loads(m.data)["channel"] for m in again] == ["c0", "c1", "c2"]
    # After the last reset, its id resumes every channel: live events follow.
    with RawStream(
        server.port, "/sub?c=c0&c=c1&c=c2", headers={"Last-Event-ID": again[-1].id}
    ) as stream:
        broker.publish("c1", "after")
        (live,) = stream.events(1)
    assert (live.event, live.data) == ("message", "after")
