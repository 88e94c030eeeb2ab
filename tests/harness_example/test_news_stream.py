"""How a gsse user tests their own stream with gsse.testing (docs/client.md).

It runs in this suite, and tests/test_testing.py also copies it out and runs
it under a plain ``pytest`` with no gevent patching, as a user's suite would.
"""

from __future__ import annotations

from gsse import App
from gsse import Event
from gsse import SSEWriter
from gsse.testing import read_events
from gsse.testing import serve

app = App()
STORIES = ["Rain today", "Sun tomorrow", "Snow on Sunday"]


@app.route("/news")
def news(event: Event) -> None:
    """Every story after the client's Last-Event-ID, one event each."""
    start = int(event.last_event_id or -1) + 1

    def send(writer: SSEWriter) -> None:
        for number in range(start, len(STORIES)):
            writer.send_event(STORIES[number], event="story", id=str(number))

    event.start_sse()
    event.set_stream_callback(send)


def test_news_sends_every_story() -> None:
    with serve(app) as url:
        stories = read_events(url + "/news", 3)
    assert [story.data for story in stories] == STORIES
    assert {story.event for story in stories} == {"story"}
    assert stories[-1].id == "2"


def test_news_resumes_after_the_last_event_id() -> None:
    with serve(app) as url:
        [story] = read_events(url + "/news", 1, last_event_id="1")
    assert story.data == "Snow on Sunday"
