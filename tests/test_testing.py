"""gsse.testing, used the way a user's own test suite uses it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gevent
import pytest

from gsse import SSEWriter
from gsse.client import EventSourceError
from gsse.testing import read_events
from gsse.testing import serve
from gsse.wire import Message

from .helpers import stream_app
from .procs import clean_env
from .procs import port_open

EXAMPLE = Path(__file__).parent / "harness_example" / "test_news_stream.py"


def test_example_suite_passes_under_plain_pytest(tmp_path: Path) -> None:
    """The documented example, copied out of this repo, run with plain pytest.

    No gevent patching there: serve() runs the server in a thread of its own.
    """
    shutil.copy(EXAMPLE, tmp_path / "test_news_stream.py")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def wsgi_stream(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A bare WSGI app, no gsse on the server side at all."""
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    return [b"event: hi\ndata: from plain WSGI\n\n"]


def test_serve_runs_any_wsgi_app_and_stops_after() -> None:
    with serve(wsgi_stream) as url:
        messages = read_events(url + "/", 1)
        port = int(url.rsplit(":", 1)[1])
    assert messages == [Message("from plain WSGI", "hi")]
    assert not port_open(port)


def one_then_idle(writer: SSEWriter) -> None:
    writer.send_event("only one")
    gevent.sleep(30)


def test_read_events_times_out_saying_what_arrived() -> None:
    with serve(stream_app(one_then_idle), ping=0) as url:
        # The stream stays open for 30 s: only the timeout can end this read.
        with pytest.raises(TimeoutError, match=r"delivered 1 of 2 events") as info:
            read_events(url + "/events", 2, timeout=0.5)
    assert "only one" in str(info.value)


def test_read_events_raises_when_not_a_stream() -> None:
    with serve(stream_app(one_then_idle)) as url:
        with pytest.raises(EventSourceError, match="not text/event-stream"):
            read_events(url + "/", 1)
        assert read_events(url + "/events", 0) == []
