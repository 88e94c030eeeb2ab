"""Docs that quote code or output quote what really runs (docs/client.md, flask.md)."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

from .helpers import RawStream
from .helpers import http_get
from .procs import free_port
from .procs import processes

REPO = Path(__file__).resolve().parent.parent


def test_client_docs_show_the_example_test_verbatim() -> None:
    """The raw Markdown holds the code itself (no include), equal to the test file."""
    page = (REPO / "docs" / "client.md").read_text(encoding="utf-8")
    example = REPO / "tests" / "harness_example" / "test_news_stream.py"
    assert "--8<--" not in page
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert example.read_text(encoding="utf-8") in blocks


FLASK_APP = """\
import gsse
from flask import Flask

app = Flask(__name__)


@app.get("/events")
def events():
    return gsse.stream(lambda writer: writer.send_event("hi"))
"""


def test_flask_docs_quote_what_flask_run_answers(tmp_path: Path) -> None:
    """The 500 text docs/flask.md quotes is what ``flask run`` really answers."""
    pytest.importorskip("flask")
    page = (REPO / "docs" / "flask.md").read_text(encoding="utf-8")
    quoted = re.search(r"the terminal\nshows:\n\n```text\n(.*?)\n```", page)
    assert quoted, "docs/flask.md no longer quotes the flask run answer"
    (tmp_path / "flask_stream_app.py").write_text(FLASK_APP)
    port = free_port()
    flask = str(Path(sys.executable).parent / "flask")
    with processes(tmp_path) as procs:
        proc = procs.start(
            [flask, "--app", "flask_stream_app", "run", "--port", str(port)],
            cwd=tmp_path,
        )
        proc.wait_port(port)
        status, body = http_get(port, "/events")
        assert status == 500
        assert body.decode().strip() == quoted.group(1)
        proc.wait_log(re.escape(quoted.group(1)))  # and the terminal shows it


def test_readme_example_stops_at_once_on_ctrl_c(tmp_path: Path) -> None:
    """The README's own stream ends by its own check at Ctrl-C, not by the deadline."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert code, "the README has no python example"
    (tmp_path / "readme_app.py").write_text(code.group(1))
    port = free_port()
    with processes(tmp_path) as procs:
        proc = procs.gsse(
            "run", "readme_app:app", "--port", str(port), "--graceful-timeout", "60",
            cwd=tmp_path,
        )  # fmt: skip
        proc.wait_port(port)
        with RawStream(port, "/events", timeout=30) as stream:
            (tick,) = stream.events(1, timeout=10)
            assert tick.data == "tick 0"
            proc.send(signal.SIGINT)
            stream.read_to_end(30)
            assert stream.ended and not stream.cut
        assert proc.wait(30) == 0, proc.log
    assert "still open after the grace period" not in proc.log


def test_presence_docs_and_reference_use_the_contract_names() -> None:
    """docs/presence.md and the API reference name issue 20's calls exactly."""
    import inspect

    import gsse
    from gsse import Event

    page = (REPO / "docs" / "presence.md").read_text(encoding="utf-8")
    for name in (
        'event.subscribe(broker, "room", presence={...})',
        'broker.stream("room", presence=..., presence_events=...)',
        'broker.presence("room")',
        'broker.subscribers("room")',
        "presence_events=True",
        'broker.publish("room", data, return_delivery=True)',
        "presence_ttl",
        "event: join",
        "event: leave",
    ):
        assert name in page, name
    hooks = (REPO / "docs" / "hooks.py").read_text(encoding="utf-8")
    assert "inherited_members: [presence, subscribers]" in hooks
    assert {"presence", "presence_events"} <= set(
        inspect.signature(Event.subscribe).parameters
    )
    assert "return_delivery" in inspect.signature(gsse.Broker.publish).parameters
    for method in (gsse.Broker.presence, gsse.Broker.subscribers):
        assert method.__doc__ and "every process" in method.__doc__
