"""examples/dashboard.py: a chart fed by a broker channel, in a client and Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.helpers import RawStream
from tests.procs import processes


def test_dashboard_streams_samples_and_replays_missed_ones(tmp_path: Path) -> None:
    """Samples arrive with increasing ids; a resume replays the ones missed."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "dashboard")
        with RawStream(port, "/metrics/stream") as stream:
            first = stream.events(3, timeout=15)
        assert [m.event for m in first] == ["sample"] * 3
        values = [json.loads(m.data)["value"] for m in first]
        assert all(isinstance(v, (int, float)) and v >= 0 for v in values)
        headers = {"Last-Event-ID": first[0].id}
        with RawStream(port, "/metrics/stream", headers=headers) as resumed:
            again = resumed.events(2, timeout=15)
    # Nothing lost, nothing twice: the resume starts right after first[0].
    assert [m.id for m in again] == [first[1].id, first[2].id]


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_dashboard_chart_updates_in_chromium(tmp_path: Path) -> None:
    """The chart's line grows with each sample, in headless Chromium."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "dashboard")
        state = open_page(
            f"http://127.0.0.1:{port}/",
            until="window.samples >= 20",
            result="({samples: window.samples,"
            " points: document.getElementById('line').getAttribute('points'),"
            " value: document.getElementById('value').textContent})",
            screenshot=screenshot_path("dashboard"),
            timeout=30,
        )
    assert state["samples"] >= 20
    assert len(state["points"].split()) >= 20
    assert float(state["value"]) >= 0
