"""examples/redis_workers.py: two worker processes share a channel through Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.examples.support import start_example
from tests.examples.support import start_redis
from tests.helpers import RawStream
from tests.procs import processes

pytestmark = pytest.mark.redis


def _hello_pid(stream: RawStream) -> int:
    hello = stream.events(1, timeout=15)[0]
    assert hello.event == "hello"
    return int(json.loads(hello.data)["pid"])


@pytest.mark.timeout(90)
def test_notes_reach_subscribers_of_every_worker(tmp_path: Path) -> None:
    """A note posted to any worker reaches the streams of both workers."""
    with processes(tmp_path) as procs:
        redis_port = start_redis(procs)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        _, port = start_example(procs, "redis_workers", "--broker", broker)
        # 1. Open streams until both workers serve at least one (bounded).
        streams: list[RawStream] = []
        pids: set[int] = set()
        try:
            deadline = time.monotonic() + 60
            while len(pids) < 2 and len(streams) < 60 and time.monotonic() < deadline:
                stream = RawStream(port, "/board", timeout=15)
                streams.append(stream)
                pids.add(_hello_pid(stream))
                # The kernel hands connections to whichever worker wakes
                # first; pausing lets the other (maybe still booting) one in.
                time.sleep(0.2)
            assert len(pids) == 2, f"every stream landed on one worker: {pids}"
            # 2. Post notes; each lands on whichever worker accepts it.
            posted = []
            for i in range(4):
                reply = requests.post(
                    f"http://127.0.0.1:{port}/publish",
                    data={"text": f"n{i}"},
                    timeout=10,
                )
                assert reply.status_code == 201, reply.text
                posted.append(reply.json())
            # 3. Every stream, on either worker, gets every note, in order.
            for stream in streams:
                notes = stream.events(4, timeout=15)
                assert [json.loads(m.data)["text"] for m in notes] == [
                    f"n{i}" for i in range(4)
                ]
                assert [m.id for m in notes] == [p["id"] for p in posted]
        finally:
            for stream in streams:
                stream.close()


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_the_board_page_posts_and_shows_a_note_in_chromium(tmp_path: Path) -> None:
    """The page names its worker, posts a note through its form and shows it."""
    with processes(tmp_path) as procs:
        redis_port = start_redis(procs)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        _, port = start_example(procs, "redis_workers", "--broker", broker)
        state = open_page(
            f"http://127.0.0.1:{port}/",
            before="window.pid !== null",
            action="document.getElementById('text').value = 'hello from chromium';"
            " document.getElementById('post').requestSubmit()",
            until="document.querySelectorAll('#notes li').length >= 1"
            " && document.getElementById('posted').textContent !== ''",
            result="({pid: window.pid,"
            " note: document.querySelector('#notes li').textContent})",
            screenshot=screenshot_path("redis_workers"),
            timeout=30,
        )
    assert state["pid"] > 0
    assert state["note"].startswith("hello from chromium (published by worker ")
