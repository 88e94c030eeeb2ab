"""examples/flask_legacy.py: ordinary Flask pages plus a live feed, end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.helpers import RawStream
from tests.procs import free_port
from tests.procs import processes

pytestmark = pytest.mark.timeout(90)

JSON = {"Accept": "application/json"}


def order(
    port: int, item: str, quantity: str = "1", **headers: str
) -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}/orders",
        data={"item": item, "quantity": quantity},
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )


def test_pages_forms_and_the_feed_work_together(tmp_path: Path) -> None:
    """Pages render, a form posts and redirects, the feed carries each order."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "flask_legacy")
        base = f"http://127.0.0.1:{port}"
        assert "Orders" in requests.get(base + "/", timeout=10).text
        assert "ordinary Flask page" in requests.get(base + "/about", timeout=10).text
        with RawStream(port, "/feed") as feed:
            assert feed.headers["content-type"] == "text/event-stream; charset=utf-8"
            placed = order(port, "tea", "2")  # a browser form: 303 back to /
            assert placed.status_code == 303 and placed.headers["location"] == "/"
            as_json = order(port, "scones", "6", **JSON)
            assert as_json.status_code == 201
            messages = feed.events(2, timeout=15)
        assert [m.event for m in messages] == ["order", "order"]
        assert [json.loads(m.data) for m in messages] == [
            {"number": 1, "item": "tea", "quantity": 2},
            {"number": 2, "item": "scones", "quantity": 6},
        ]
        assert messages[1].id == as_json.json()["id"]
        page = requests.get(base + "/", timeout=10).text
        assert "<td>tea</td>" in page and "<td>scones</td>" in page


def test_bad_orders_are_refused_with_a_reason(tmp_path: Path) -> None:
    """Empty, long or odd quantities answer 400 saying what a valid order is."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "flask_legacy")
        for item, quantity in (("", "1"), ("x" * 61, "1"), ("tea", "0"), ("tea", "x")):
            refused = order(port, item, quantity)
            assert refused.status_code == 400
            assert "quantity from 1 to 99" in refused.text


def test_the_example_runs_unchanged_under_gunicorn(tmp_path: Path) -> None:
    """``gunicorn -k gevent -c python:gsse.gunicorn ...``, as the docstring says."""
    with processes(tmp_path) as procs:
        port = free_port()
        proc = procs.start(
            [sys.executable, "-m", "gunicorn", "-k", "gevent",
             "-c", "python:gsse.gunicorn", "--bind",
             f"127.0.0.1:{port}", "examples.flask_legacy:app"]
        )  # fmt: skip
        proc.wait_port(port)
        with RawStream(port, "/feed") as feed:
            assert order(port, "jam", **JSON).status_code == 201
            (message,) = feed.events(1, timeout=15)
        assert json.loads(message.data)["item"] == "jam"


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_live_feed_updates_the_page_in_chromium(tmp_path: Path) -> None:
    """Orders placed elsewhere appear in the page's live feed, newest first."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "flask_legacy")
        order(port, "bread", "1", **JSON)  # before the page: in its table
        state = open_page(
            f"http://127.0.0.1:{port}/",
            before="document.getElementById('status').textContent === 'live'",
            action="for (const [item, quantity] of [['milk', '2'], ['eggs', '12']])"
            " { fetch('/orders', {method: 'POST', headers: {Accept:"
            " 'application/json'}, body: new URLSearchParams({item, quantity})}) }",
            until="window.received >= 2",
            result="({feed: [...document.querySelectorAll('#feed li')]"
            ".map(li => li.textContent),"
            " table: document.querySelector('table').innerText})",
            screenshot=screenshot_path("flask_legacy"),
            timeout=30,
        )
    # The two orders race each other, so their numbers may come either way.
    assert sorted(text.split(": ", 1)[1] for text in state["feed"]) == [
        "12 × eggs",
        "2 × milk",
    ]
    assert sorted(text.split(":")[0] for text in state["feed"]) == ["#2", "#3"]
    assert "bread" in state["table"]
