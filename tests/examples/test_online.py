"""examples/online.py: who's online, with a real client, Redis and Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.examples.support import start_redis
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.procs import processes

pytestmark = pytest.mark.timeout(120)


def who(port: int, room: str = "lobby") -> dict[str, object]:
    reply = requests.get(f"http://127.0.0.1:{port}/rooms/{room}/who", timeout=10)
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def wave(port: int, name: str, room: str = "lobby") -> requests.Response:
    url = f"http://127.0.0.1:{port}/rooms/{room}/wave"
    return requests.post(url, data={"name": name}, timeout=30)


def test_pages_are_told_who_joins_and_leaves(tmp_path: Path) -> None:
    """A page gets a join per member, then a leave; a wave counts the pages."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "online")
        assert wave(port, "ann").json() == {"delivered": 0}
        with RawStream(port, "/rooms/lobby/events?name=ann") as ann:
            assert [m.data for m in ann.events(1, timeout=30)] == ['{"name":"ann"}']
            with RawStream(port, "/rooms/lobby/events?name=bob") as bob:
                joins = bob.events(2, timeout=30)
                assert sorted(json.loads(m.data)["name"] for m in joins) == [
                    "ann",
                    "bob",
                ]
                (joined,) = ann.events(1, timeout=30)
                assert (joined.event, joined.data) == ("join", '{"name":"bob"}')
                assert who(port) == {
                    "online": [{"name": "ann"}, {"name": "bob"}],
                    "subscribers": 2,
                }
                assert wave(port, "bob").json() == {"delivered": 2}
                assert ann.events(1, timeout=30)[0].event == "wave"
            (left,) = ann.events(1, timeout=30)
            assert (left.event, left.data) == ("leave", '{"name":"bob"}')


def test_bad_names_are_refused(tmp_path: Path) -> None:
    """A missing or odd name answers 400, never 500."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "online")
        base = f"http://127.0.0.1:{port}/rooms"
        assert requests.get(f"{base}/lobby/events", timeout=10).status_code == 400
        assert (
            requests.get(f"{base}/a%20b/events?name=x", timeout=10).status_code == 400
        )
        assert wave(port, "<b>").status_code == 400
        assert requests.get(f"{base}/a%20b/who", timeout=10).status_code == 404


@pytest.mark.redis
def test_two_servers_share_the_room_through_redis(tmp_path: Path) -> None:
    """With --broker redis://, each server lists the members of both."""
    with processes(tmp_path) as procs:
        redis_port = start_redis(procs)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        _, port_a = start_example(procs, "online", "--broker", broker)
        _, port_b = start_example(procs, "online", "--broker", broker)
        with (
            RawStream(port_a, "/rooms/lobby/events?name=ann") as ann,
            RawStream(port_b, "/rooms/lobby/events?name=bob"),
        ):
            assert wait_until(lambda: who(port_b)["subscribers"] == 2, 60)
            names = sorted(m["name"] for m in who(port_a)["online"])  # type: ignore[attr-defined]
            assert names == ["ann", "bob"]
            got = ann.events(2, timeout=30)
            assert sorted(m.data for m in got) == ['{"name":"ann"}', '{"name":"bob"}']
            assert wave(port_a, "ann").json() == {"delivered": 2}


@pytest.mark.browser
@pytest.mark.timeout(150)
def test_the_online_page_lists_members_in_chromium(tmp_path: Path) -> None:
    """The page lists itself and bob, shows carol come and go, and counts a wave."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "online")
        with RawStream(port, "/rooms/lobby/events?name=bob") as bob:
            bob.events(1, timeout=30)
            state = open_page(
                f"http://127.0.0.1:{port}/?room=lobby&name=chromium",
                before="document.getElementById('count').textContent === '2'",
                action="""(async () => {
                    const carol = new EventSource('/rooms/lobby/events?name=carol');
                    await new Promise((ok) => { carol.onopen = ok; });
                    while (document.getElementById('count').textContent !== '3') {
                      await new Promise((ok) => setTimeout(ok, 20));
                    }
                    carol.close();
                    while (document.getElementById('count').textContent !== '2') {
                      await new Promise((ok) => setTimeout(ok, 20));
                    }
                    document.getElementById('wave').click();
                })()""",
                until="window.leaves >= 1 && window.waves >= 1"
                " && document.getElementById('reached').textContent !== ''"
                " && document.getElementById('count').textContent === '2'",
                result="({online: [...document.querySelectorAll('#online li')]"
                ".map(li => li.textContent),"
                " reached: document.getElementById('reached').textContent,"
                " log: [...document.querySelectorAll('#log li')]"
                ".map(li => li.textContent)})",
                screenshot=screenshot_path("online"),
                timeout=60,
            )
    assert state["online"] == ["bob", "chromium"]
    assert state["reached"] == "reached 2 page(s)"
    assert "carol left" in state["log"] and "chromium waves" in state["log"]
