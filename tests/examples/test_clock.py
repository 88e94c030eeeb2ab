"""examples/clock.py: the time once a second, to a client and to a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.helpers import RawStream
from tests.procs import processes


def test_clock_streams_the_time(tmp_path: Path) -> None:
    """The stream starts with retry: 2000, then sends "time" events of JSON."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "clock")
        with RawStream(port, "/time") as stream:
            assert stream.status == 200
            messages = stream.events(2, timeout=10)
            assert stream.body.startswith(b"retry: 2000\n")
    for message in messages:
        assert message.event == "time"
        now = json.loads(message.data)
        assert len(now["time"]) == 8 and now["iso"].startswith("20")


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_clock_page_ticks_in_chromium(tmp_path: Path) -> None:
    """The page's clock changes with each event, in headless Chromium."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "clock")
        state = open_page(
            f"http://127.0.0.1:{port}/",
            until="window.ticks >= 2",
            result="({ticks: window.ticks,"
            " clock: document.getElementById('clock').textContent,"
            " status: document.getElementById('status').textContent})",
            screenshot=screenshot_path("clock"),
        )
    assert state["ticks"] >= 2
    assert state["clock"].count(":") == 2 and state["clock"] != "--:--:--"
    assert state["status"].startswith("live")
