"""Non-ASCII event ids end to end: the server reads Last-Event-ID as UTF-8,
gsse.client sends it UTF-8, and Chromium resumes after one."""

from __future__ import annotations

import json
from collections.abc import Callable

import gevent
import pytest
from flask import Flask

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.client import EventSource
from tests.browser import open_page
from tests.helpers import RawStream

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

IDS = ["é-1", "ü,ß-2", "日本-3", "😀", "a\u00a0b"]


def as_wsgi_sees(text: str) -> str:
    """The header value a browser sends for ``text`` (UTF-8), as latin-1 text."""
    return text.encode("utf-8").decode("latin-1")


def echo_app(seen: list[tuple[str | None, str | None, str | None]]) -> App:
    """/events answers with the ids it was given: Event's, the writer's, raw."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        from_event = event.last_event_id
        raw = event.request.environ.get("HTTP_LAST_EVENT_ID")

        def callback(writer: SSEWriter) -> None:
            seen.append((from_event, writer.last_event_id, raw))
            writer.send_event(writer.last_event_id or "none")
            writer.close()

        event.start_sse()
        event.set_stream_callback(callback)

    return app


def test_the_server_reads_last_event_id_as_utf8(serve: Serve) -> None:
    """Event.last_event_id and writer.last_event_id are the UTF-8 text sent."""
    seen: list[tuple[str | None, str | None, str | None]] = []
    port = serve(echo_app(seen)).port
    for text in IDS:
        headers = {"Last-Event-ID": as_wsgi_sees(text)}
        with RawStream(port, "/events", headers=headers) as stream:
            assert stream.events(1, timeout=10)[0].data == text
        assert seen[-1] == (text, text, as_wsgi_sees(text))
    # Bytes that are not UTF-8 are kept as the host decoded them.
    with RawStream(port, "/events", headers={"Last-Event-ID": "\xff-1"}) as stream:
        assert stream.events(1, timeout=10)[0].data == "\xff-1"


def test_flask_streams_read_last_event_id_as_utf8(serve: Serve) -> None:
    """gsse.stream() under Flask hands the writer the UTF-8 id too."""
    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> object:
        def callback(writer: SSEWriter) -> None:
            writer.send_event(writer.last_event_id or "none")
            writer.close()

        return gsse.stream(callback)

    port = serve(flask_app).port
    for text in IDS:
        headers = {"Last-Event-ID": as_wsgi_sees(text)}
        with RawStream(port, "/events", headers=headers) as stream:
            assert stream.events(1, timeout=10)[0].data == text


def resuming_app() -> App:
    """/events sends the events after Last-Event-ID, one per connection."""
    app = App()
    events = [(f"{text}", f"event {i}") for i, text in enumerate(IDS)]

    @app.route("/events")
    def stream(event: Event) -> None:
        last = event.last_event_id
        ids = [event_id for event_id, _ in events]
        start = ids.index(last) + 1 if last in ids else 0
        if last is not None and last not in ids:
            start = len(events)  # an id we never sent: say so instead

        def callback(writer: SSEWriter) -> None:
            if start >= len(events):
                writer.send_event(f"unknown id {last!r}", event="reset")
                gevent.sleep(30)
                return
            event_id, data = events[start]
            writer.send_event(data, id=event_id)
            writer.close()  # the client reconnects with this id

        event.start_sse(retry=50)
        event.set_stream_callback(callback)

    @app.route("/")
    def page(event: Event) -> tuple[str, int, dict[str, str]]:
        return PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}

    return app


PAGE = """<!doctype html><meta charset="utf-8"><body><ul id="log"></ul><script>
const got = [];
const source = new EventSource("/events");
const show = (kind, e) => {
  got.push([kind, e.lastEventId, e.data]);
  document.getElementById("log").insertAdjacentHTML(
    "beforeend", "<li></li>");
  document.getElementById("log").lastChild.textContent =
    kind + " " + e.lastEventId + " " + e.data;
  if (got.length >= COUNT) source.close();
};
source.onmessage = (e) => show("message", e);
source.addEventListener("reset", (e) => show("reset", e));
window.got = got;
</script>""".replace("COUNT", str(len(IDS)))


def test_the_client_reconnects_after_non_ascii_ids(serve: Serve) -> None:
    """gsse.client sends Last-Event-ID UTF-8 encoded and resumes after each id."""
    port = serve(resuming_app()).port
    url = f"http://127.0.0.1:{port}/events"
    with EventSource(url, timeout=10) as source:
        messages = []
        for message in source:
            messages.append(message)
            if len(messages) == len(IDS):
                break
    assert [(m.event, m.id, m.data) for m in messages] == [
        ("message", text, f"event {i}") for i, text in enumerate(IDS)
    ]
    # Starting from an id given by the caller works the same way.
    with EventSource(url, last_event_id=IDS[1], timeout=10) as source:
        assert next(iter(source)).data == "event 2"


@pytest.mark.browser
def test_chromium_resumes_after_non_ascii_ids(serve: Serve) -> None:
    """Chromium reconnects after ids like é-1 and the server resumes after each."""
    port = serve(resuming_app()).port
    got = open_page(
        f"http://127.0.0.1:{port}/",
        until=f"window.got && window.got.length >= {len(IDS)}",
        result="JSON.stringify(window.got)",
    )
    assert json.loads(got) == [
        ["message", text, f"event {i}"] for i, text in enumerate(IDS)
    ]
