"""``gsse tail URL``: the real command in a subprocess, against a real server."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable

import gevent
import pytest
from werkzeug.wrappers import Response

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter

from .procs import clean_env
from .procs import gsse_command


def tail_app(requests: list[dict[str, str]]) -> App:
    """/events streams three events then drops; the reconnection gets 204.

    /endless sends one event and stays open; /html is not an event stream.
    """
    app = App()

    @app.route("/events")
    def events(event: Event) -> Response | None:
        requests.append(dict(event.request.headers))
        if event.last_event_id is not None:
            return Response(status=204)

        def send(writer: SSEWriter) -> None:
            writer.send_event("hello", event="greeting", id="1", retry=50)
            writer.send_event("two\nlines")
            writer.send_event({"n": 3}, id="3")
            writer.close()

        event.start_sse()
        event.set_stream_callback(send)
        return None

    @app.route("/endless")
    def endless(event: Event) -> None:
        def send(writer: SSEWriter) -> None:
            writer.send_event("first")
            gevent.sleep(30)

        event.start_sse()
        event.set_stream_callback(send)

    @app.route("/html")
    def html(event: Event) -> Response:
        return Response("<p>hi</p>", mimetype="text/html")

    return app


def run_tail(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gsse_command(), "tail", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )


@pytest.fixture
def server(serve: Callable[..., Server]) -> tuple[Server, list[dict[str, str]]]:
    requests: list[dict[str, str]] = []
    return serve(tail_app(requests), ping=0), requests


def test_tail_prints_events_readably(
    server: tuple[Server, list[dict[str, str]]],
) -> None:
    """Event type, id and retry on a header line; data indented below."""
    app_server, requests = server
    done = run_tail(f"{app_server.url}/events")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "greeting id=1 retry=50\n  hello\n"
        "message id=1\n  two\n  lines\n"
        'message id=3\n  {"n":3}\n'
    )
    # It reconnected once (after the 50 ms retry), from the last ID, and said so.
    assert [r.get("Last-Event-Id") for r in requests] == [None, "3"]
    assert "the server ended the stream; reconnecting in 0.1 s" in done.stderr


def test_tail_json_headers_and_last_event_id(
    server: tuple[Server, list[dict[str, str]]],
) -> None:
    """--json prints one object per line; --header and --last-event-id are sent."""
    app_server, requests = server
    done = run_tail(
        f"{app_server.url}/events",
        "--json",
        "--header",
        "X-Token: secret",
        "--header",
        "X-Other:2",
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == [
        {"event": "greeting", "data": "hello", "id": "1", "retry": 50},
        {"event": "message", "data": "two\nlines", "id": "1", "retry": None},
        {"event": "message", "data": '{"n":3}', "id": "3", "retry": None},
    ]
    assert requests[0]["X-Token"] == "secret"
    assert requests[0]["X-Other"] == "2"

    requests.clear()
    done = run_tail(f"{app_server.url}/events", "--last-event-id", "41")
    assert (done.returncode, done.stdout) == (0, "")
    assert requests[0]["Last-Event-Id"] == "41"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/html", "Content-Type 'text/html; charset=utf-8', not text/event-stream"),
        ("/missing", "answered HTTP 404 NOT FOUND"),
    ],
)
def test_tail_errors_are_one_line_and_exit_1(
    server: tuple[Server, list[dict[str, str]]], path: str, message: str
) -> None:
    """Not an event stream: one clear line on stderr, exit code 1."""
    app_server, _ = server
    done = run_tail(f"{app_server.url}{path}")
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: ") and message in line, line


def test_tail_bad_usage_exits_2() -> None:
    """A header without a colon is a usage error."""
    done = run_tail("http://127.0.0.1:9/", "--header", "nocolon")
    assert done.returncode == 2
    assert "expected NAME:VALUE" in done.stderr


def test_tail_ctrl_c_exits_0_quietly(
    server: tuple[Server, list[dict[str, str]]],
) -> None:
    """Ctrl-C while waiting for events: exit 0, no traceback."""
    app_server, _ = server
    proc = subprocess.Popen(
        [*gsse_command(), "tail", f"{app_server.url}/endless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        with gevent.Timeout(15):
            assert proc.stdout is not None
            assert proc.stdout.readline() == "message\n"
            assert proc.stdout.readline() == "  first\n"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0
    assert stderr == ""
    assert stdout == ""
