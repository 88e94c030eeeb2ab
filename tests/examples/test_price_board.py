"""examples/price_board.py: a compacted channel, a slow client, and Chromium."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import EXAMPLES
from tests.examples.support import start_example
from tests.helpers import PATIENCE
from tests.helpers import RawStream
from tests.procs import clean_env
from tests.procs import processes

pytestmark = pytest.mark.timeout(120)


def feed(port: int, on: bool) -> None:
    reply = requests.post(
        f"http://127.0.0.1:{port}/feed", data={"on": int(on)}, timeout=10
    )
    assert reply.json() == {"running": on}


def quotes(port: int) -> dict[str, dict[str, object]]:
    reply = requests.get(f"http://127.0.0.1:{port}/quotes", timeout=10)
    return dict(reply.json())


def test_a_new_stream_gets_every_current_price_then_changes(tmp_path: Path) -> None:
    """snapshot=True: one event per symbol, the current one; then live ones."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "price_board")
        feed(port, on=False)
        now = quotes(port)
        with RawStream(port, "/prices") as stream:
            first = stream.events(len(now), timeout=15)
            assert {m.event for m in first} == {"price"}
            assert {
                json.loads(m.data)["symbol"]: json.loads(m.data) for m in first
            } == now
            feed(port, on=True)
            later = [json.loads(m.data) for m in stream.events(20, timeout=15)]
        for quote in later:
            assert quote["seq"] > now[quote["symbol"]]["seq"]


def test_the_slow_client_stays_connected_and_ends_with_current_prices(
    tmp_path: Path,
) -> None:
    """Conflation: the slow client skips superseded prices, is never dropped."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "price_board", env={"PRICE_BOARD_RATE": "2000"})
        slow = procs.start(
            [sys.executable, str(EXAMPLES / "price_board.py"), "--json"]
            + ["--slow-client", f"http://127.0.0.1:{port}/prices", "--rate", "10000"],
            env=clean_env(),
        )

        def lines() -> list[dict[str, object]]:
            return [json.loads(x) for x in slow.log.splitlines() if x.startswith("{")]

        deadline = time.monotonic() + PATIENCE
        while not any(int(x["skipped"]) > 0 for x in lines()):  # type: ignore[call-overload]
            assert time.monotonic() < deadline, slow.log
            time.sleep(0.2)
        feed(port, on=False)
        now = {s: q["price"] for s, q in quotes(port).items()}
        while not lines() or lines()[-1]["prices"] != now:
            assert time.monotonic() < deadline + PATIENCE, (now, slow.log[-2000:])
            time.sleep(0.2)
        assert "closed" not in slow.log
        assert all(x["backwards"] == 0 for x in lines())
        slow.stop()


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_board_shows_current_prices_at_once_in_chromium(tmp_path: Path) -> None:
    """The page opens on the current board (snapshot), then follows changes."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "price_board")
        feed(port, on=False)
        now = {s: f"{q['price']:.2f}" for s, q in quotes(port).items()}
        state = open_page(
            f"http://127.0.0.1:{port}/",
            before=f"window.updates >= {len(now)}",
            action="window.atOpen = [window.board(), window.updates];"
            " fetch('/feed', {method: 'POST', body: new URLSearchParams({on: '1'})})",
            until=f"window.updates >= {len(now) + 30}",
            result="({atOpen: window.atOpen, rows:"
            " document.querySelectorAll('#board tr').length})",
            screenshot=screenshot_path("price_board"),
            timeout=30,
        )
    board, updates = state["atOpen"]
    assert board == now
    assert updates == len(now)  # one event per symbol: no superseded price
    assert state["rows"] == len(now)
