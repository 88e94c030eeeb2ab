"""examples/assistant.py: answers as resumable runs, over sockets and in Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.browser import require_browser
from tests.examples.support import start_example
from tests.helpers import RawStream
from tests.procs import REPO
from tests.procs import clean_env
from tests.procs import processes


def ask(port: int, question: str, sdk: bool = False) -> str:
    form = {"question": question, "sdk": "1" if sdk else ""}
    reply = requests.post(f"http://127.0.0.1:{port}/ask", data=form, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def follow(port: int, run_id: str) -> tuple[str, str]:
    """The whole answer's text and the run's final status."""
    with RawStream(port, f"/runs/{run_id}", timeout=30) as stream:
        assert stream.status == 200
        stream.read_to_end(60)
        messages = stream.decoder.feed(stream.body)
    text = "".join(m.data for m in messages if m.event == "token")
    assert messages[-1].event == "end"
    return text, json.loads(messages[-1].data)["status"]


@pytest.mark.timeout(120)
def test_both_models_answer_the_same_and_a_late_follower_gets_it_all(
    tmp_path: Path,
) -> None:
    """The greenlet model and the blocking SDK (pool thread) give one answer."""
    with processes(tmp_path) as procs:
        _, port = start_example(
            procs, "assistant", env={"GSSE_ASSISTANT_DELAY": "0.005"}
        )
        fake, sdk = ask(port, "why?"), ask(port, "why?", sdk=True)
        text, status = follow(port, fake)
        assert status == "done" and "Stop ends it for every tab" in text
        assert follow(port, sdk) == (text, "done")
        assert follow(port, fake) == (text, "done")  # again, after the end
        bad = requests.post(f"http://127.0.0.1:{port}/ask", data={}, timeout=10)
        assert bad.status_code == 400
        gone = requests.get(f"http://127.0.0.1:{port}/runs/{'x' * 22}", timeout=10)
        assert gone.status_code == 404


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_reload_second_tab_and_stop_in_chromium(tmp_path: Path) -> None:
    """Reload mid-answer continues it; a second tab shows it; Stop ends both."""
    require_browser()
    with processes(tmp_path) as procs:
        _, port = start_example(
            procs, "assistant", env={"GSSE_ASSISTANT_DELAY": "0.15"}
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.examples.assistant_browser",
                f"http://127.0.0.1:{port}",
            ],
            cwd=str(REPO),
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=150,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # The reloaded tab shows the answer from its first word, then more.
    assert seen["after_reload"].startswith(seen["before_reload"])
    assert len(seen["after_reload"]) > len(seen["before_reload"])
    # The second tab shows the same answer as the first.
    assert seen["second_tab"].startswith(seen["before_reload"])
    assert seen["statuses"] == ["cancelled", "cancelled"]
    assert seen["first_final"] == seen["second_final"]
