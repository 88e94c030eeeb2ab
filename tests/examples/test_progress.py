"""examples/progress.py: a blocking job in a pool thread; its progress bar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.procs import processes


def test_progress_reaches_100_while_the_server_stays_responsive(
    tmp_path: Path,
) -> None:
    """Progress events count up to 100%, then "done"; pages load meanwhile."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "progress")
        with RawStream(port, "/job?steps=10", timeout=30) as stream:
            first = stream.events(1, timeout=30)[0]
            assert json.loads(first.data)["step"] == 1
            # The job blocks its thread, not the event loop: the page still loads.
            status, body = http_get(port, "/", timeout=10)
            assert status == 200 and b"<progress" in body
            rest = stream.events(10, timeout=60)
    progress = [json.loads(m.data) for m in [first, *rest] if m.event == "progress"]
    assert [p["step"] for p in progress] == list(range(1, 11))
    assert progress[-1]["percent"] == 100
    assert rest[-1].event == "done" and len(json.loads(rest[-1].data)["key"]) == 64


def test_progress_rejects_a_bad_step_count(tmp_path: Path) -> None:
    """steps outside 1..100 get a 400 before any stream starts."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "progress")
        status, body = http_get(port, "/job?steps=1000")
    assert status == 400 and b"between 1 and 100" in body


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_progress_bar_reaches_100_percent_in_chromium(tmp_path: Path) -> None:
    """The page's progress bar fills to 100% and shows the job's result."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "progress")
        state = open_page(
            f"http://127.0.0.1:{port}/",
            until="window.done === true",
            result="({value: document.getElementById('bar').value,"
            " percent: document.getElementById('percent').textContent,"
            " result: document.getElementById('result').textContent})",
            screenshot=screenshot_path("progress"),
            timeout=60,
        )
    assert state["value"] == 100 and state["percent"] == "100"
    assert state["result"].startswith("done: ")
