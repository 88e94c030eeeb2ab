"""Channel names from user input cannot add a field, an event or a header."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from tests.helpers import RawStream
from tests.helpers import wait_until

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(120)

Broker = gsse.Broker

hostile = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", "\0", ":", " ", "a", "event: x", "é", "/"])
    | st.characters(blacklist_categories=("Cs",)),
    min_size=1,
    max_size=16,
).map("".join)


@pytest.fixture
def channel_server(serve: Serve) -> tuple[Server, Any]:
    broker = Broker.from_url("memory://")
    app = App()

    @app.route("/sub")
    def sub(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, event.request.args["channel"])

    return serve(app), broker


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(channel=hostile)
def test_a_hostile_channel_name_delivers_exactly_the_published_event(
    channel_server: tuple[Server, Any], channel: str
) -> None:
    """Either the name is refused, or one event with our fields arrives."""
    server, broker = channel_server
    query = urllib.parse.urlencode({"channel": channel})
    try:
        broker.publish(channel, "before")
    except (ValueError, TypeError):
        with RawStream(server.port, "/sub?" + query, timeout=10) as refused:
            assert refused.status >= 400
        return
    with RawStream(
        server.port, "/sub?" + query, headers={"Last-Event-ID": "bogus"}, timeout=10
    ) as stream:
        assert stream.status == 200
        assert set(stream.headers) >= {"content-type"}
        # A reset names the channel inside JSON data, never as a field.
        reset = stream.events(1, timeout=10)[0]
        assert reset.event == "reset"
        assert json.loads(reset.data)["channel"] == channel
        assert wait_until(lambda: _published(broker, channel), timeout=5)
        messages = stream.events(1, timeout=10)
        assert len(messages) == 1
        assert messages[0].data == "after"
        assert messages[0].event == "note"


def _published(broker: Any, channel: str) -> bool:
    broker.publish(channel, "after", event="note")
    return True
