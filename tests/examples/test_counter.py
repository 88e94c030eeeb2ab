"""examples/counter.py, the seed: run as its docstring says, by client and browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.helpers import RawStream
from tests.procs import processes


def test_counter_streams_ticks_with_ids(tmp_path: Path) -> None:
    """The stream sends tick 0, 1, 2 with event "tick" and matching ids."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "counter")
        with RawStream(port, "/events") as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            messages = stream.events(3, timeout=10)
    assert [(m.event, m.data, m.id) for m in messages] == [
        ("tick", f"tick {i}", str(i)) for i in range(3)
    ]


@pytest.mark.parametrize(
    ("last_event_id", "first"),
    [("4", 5), ("0", 1), ("28", 29), ("abc", 0), ("", 0), ("-3", 0)],
)
def test_counter_resumes_after_last_event_id(
    tmp_path: Path, last_event_id: str, first: int
) -> None:
    """A reconnecting client goes on after the tick it saw last, not from 0."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "counter")
        headers = {"Last-Event-ID": last_event_id}
        with RawStream(port, "/events", headers=headers) as stream:
            assert stream.status == 200
            (message,) = stream.events(1, timeout=10)
    assert (message.data, message.id) == (f"tick {first}", str(first))


@pytest.mark.parametrize("last_event_id", ["29", "30", "99999999999999999999"])
def test_counter_says_204_after_the_last_tick(
    tmp_path: Path, last_event_id: str
) -> None:
    """After the last tick, a reconnection gets 204, so the browser stops."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "counter")
        headers = {"Last-Event-ID": last_event_id, "Connection": "close"}
        with RawStream(port, "/events", headers=headers) as stream:
            assert stream.status == 204


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_counter_page_shows_ticks_in_chromium(tmp_path: Path) -> None:
    """The page lists the ticks as they arrive, in headless Chromium."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "counter")
        items = open_page(
            f"http://127.0.0.1:{port}/",
            until="document.querySelectorAll('#log li').length >= 3",
            result="[...document.querySelectorAll('#log li')].map(e => e.textContent)",
            screenshot=screenshot_path("counter"),
        )
    assert items[:3] == ["0: tick 0", "1: tick 1", "2: tick 2"]
