"""examples/chat.py: rooms on a broker, with a real client, Redis and Chromium."""

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
from tests.procs import processes

pytestmark = pytest.mark.timeout(90)


def say(port: int, room: str, name: str, text: str) -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}/rooms/{room}",
        data={"name": name, "text": text},
        timeout=10,
    )


def test_messages_reach_the_room_and_replay_after_a_reconnect(tmp_path: Path) -> None:
    """A posted message reaches its room only; a resume replays what was missed."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "chat")
        first = say(port, "lobby", "ann", "hello")
        assert first.status_code == 201, first.text
        headers = {"Last-Event-ID": first.json()["id"]}
        with (
            RawStream(port, "/rooms/lobby/events", headers=headers) as lobby,
            RawStream(port, "/rooms/books/events", headers=headers) as books,
        ):
            ids = [say(port, "lobby", "bob", f"m{i}").json()["id"] for i in range(3)]
            got = lobby.events(3, timeout=15)
            assert [m.id for m in got] == ids
            assert [m.event for m in got] == ["chat"] * 3
            assert [json.loads(m.data) for m in got] == [
                {"name": "bob", "text": f"m{i}"} for i in range(3)
            ]
            # The other room's stream starts with a reset (the id is not its own).
            assert [m.event for m in books.events(1, timeout=15)] == ["reset"]
        headers = {"Last-Event-ID": ids[0]}
        with RawStream(port, "/rooms/lobby/events", headers=headers) as again:
            assert [m.id for m in again.events(2, timeout=15)] == ids[1:]


def test_bad_posts_are_refused(tmp_path: Path) -> None:
    """Empty or too long fields and odd room names answer 400/404, not 500."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "chat")
        assert say(port, "lobby", "", "x").status_code == 400
        assert say(port, "lobby", "ann", "x" * 501).status_code == 400
        assert say(port, "a b", "ann", "x").status_code == 400
        reply = requests.get(f"http://127.0.0.1:{port}/rooms/a%0Ab/events", timeout=10)
        assert reply.status_code == 404


@pytest.mark.redis
def test_two_chat_servers_share_rooms_through_redis(tmp_path: Path) -> None:
    """With --broker redis://, a message posted to one server reaches the other."""
    with processes(tmp_path) as procs:
        redis_port = start_redis(procs)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        _, port_a = start_example(procs, "chat", "--broker", broker)
        _, port_b = start_example(procs, "chat", "--broker", broker)
        start = say(port_a, "lobby", "ann", "start").json()["id"]
        headers = {"Last-Event-ID": start}
        with RawStream(port_b, "/rooms/lobby/events", headers=headers) as stream:
            sent = say(port_a, "lobby", "ann", "across processes")
            assert sent.status_code == 201
            message = stream.events(1, timeout=15)[0]
        assert message.id == sent.json()["id"]
        assert json.loads(message.data)["text"] == "across processes"


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_chat_page_sends_and_shows_messages_in_chromium(tmp_path: Path) -> None:
    """The page posts through its form and shows its own and others' messages."""
    with processes(tmp_path) as procs:
        _, port = start_example(procs, "chat")
        state = open_page(
            f"http://127.0.0.1:{port}/?room=lobby",
            before="document.getElementById('status').textContent === 'live'",
            action="document.getElementById('name').value = 'chromium';"
            " document.getElementById('text').value = '<b>hi</b> from chromium';"
            " document.getElementById('say').requestSubmit();"
            " fetch('/rooms/lobby', {method: 'POST', body: new URLSearchParams("
            "{name: 'bob', text: 'hello back'})})",
            until="window.received >= 2",
            result="({items: [...document.querySelectorAll('#log li')]"
            ".map(li => li.textContent),"
            " bold: document.querySelectorAll('#log li b').length,"
            " text: document.getElementById('text').value})",
            screenshot=screenshot_path("chat"),
            timeout=30,
        )
    assert sorted(state["items"]) == [
        "bob: hello back",
        "chromium: <b>hi</b> from chromium",
    ]
    # Message text is shown as text: the only <b> elements are the names.
    assert state["bold"] == 2
    assert state["text"] == ""
