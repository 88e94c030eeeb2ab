"""``gsse tail URL``: the real command in a subprocess, against a real server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable

import gevent
import pytest
from werkzeug.wrappers import Response

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter

from .helpers import wait_until
from .procs import clean_env
from .procs import gsse_command

#: How long a test waits for tail to get somewhere or to exit: generous, the
#: tests are about what happens, not how fast (CI machines are loaded).
EXIT_WAIT = 60


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


def start_tail(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*gsse_command(), "tail", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def interrupt(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Ctrl-C ``proc``; its exit code and the rest of its output.

    The bound is generous: the test is about how it exits, not how fast.
    """
    try:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=EXIT_WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(EXIT_WAIT)
    return proc.returncode, stdout, stderr


def test_tail_ctrl_c_exits_0_quietly(
    server: tuple[Server, list[dict[str, str]]],
) -> None:
    """Ctrl-C while waiting for events: exit 0, no traceback."""
    app_server, _ = server
    proc = start_tail(f"{app_server.url}/endless")
    try:
        with gevent.Timeout(EXIT_WAIT):
            assert proc.stdout is not None
            assert proc.stdout.readline() == "message\n"
            assert proc.stdout.readline() == "  first\n"
    finally:
        code, stdout, stderr = interrupt(proc)
    assert (code, stdout, stderr) == (0, "", "")


def test_tail_ctrl_c_while_the_server_has_not_answered() -> None:
    """Ctrl-C while the request waits for response headers: exit 0, no traceback."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    proc = start_tail(f"http://127.0.0.1:{port}/events")
    try:
        with gevent.Timeout(EXIT_WAIT):
            conn, _ = listener.accept()
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                assert chunk, "tail closed the connection before its request"
                request += chunk
        assert request.startswith(b"GET /events HTTP/1.1\r\n")
    finally:
        code, stdout, stderr = interrupt(proc)
        listener.close()
    conn.close()
    assert (code, stdout, stderr) == (0, "", "")


def test_tail_ctrl_c_while_waiting_to_reconnect(
    serve: Callable[..., Server],
) -> None:
    """Ctrl-C during the wait before a reconnection: exit 0, quietly.

    (A first connection that is refused is an error at once, so the stream
    here ends after one event with ``retry: 3000`` and tail waits 3 s.)
    """
    app = App()

    @app.route("/once")
    def once(event: Event) -> None:
        def send(writer: SSEWriter) -> None:
            with writer:
                writer.send_event("only", id="1", retry=3000)

        event.start_sse()
        event.set_stream_callback(send)

    url = f"http://127.0.0.1:{serve(app).port}/once"
    proc = start_tail(url)
    try:
        with gevent.Timeout(EXIT_WAIT):
            assert proc.stderr is not None
            notice = proc.stderr.readline()
    finally:
        code, stdout, stderr = interrupt(proc)
    assert notice.startswith(f"gsse tail: {url}: the server ended the stream")
    assert "reconnecting in 3." in notice
    assert (code, stderr) == (0, "")
    assert stdout.splitlines()[0] == "message id=1 retry=3000"


@pytest.mark.parametrize("reconnections", [1, 4, 12, 30])
def test_tail_ctrl_c_while_connecting_and_closing(
    serve: Callable[..., Server], reconnections: int
) -> None:
    """Ctrl-C while tail reconnects flat out: exit 0 and no traceback, every time.

    Each connection gets one event with ``retry: 0`` and ends, so the signal
    lands in requests' connect, response or close code. Raised there, it
    could leave a urllib3 pool lock held and hang tail for ever (once in
    fifty or so); now only tail's main thread, outside requests, takes it.
    """
    requests: list[int] = []
    app = App()

    @app.route("/flap")
    def flap(event: Event) -> None:
        requests.append(1)

        def send(writer: SSEWriter) -> None:
            writer.send_event("x", retry=0)
            writer.close()

        event.start_sse()
        event.set_stream_callback(send)

    app_server = serve(app, ping=0)
    proc = start_tail(f"{app_server.url}/flap")
    try:
        assert wait_until(
            lambda: len(requests) > reconnections or proc.poll() is not None,
            timeout=EXIT_WAIT,
        )
        assert proc.poll() is None, proc.communicate()
    finally:
        code, stdout, stderr = interrupt(proc)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert all(line.startswith("gsse tail: ") for line in stderr.splitlines())
    # Whole events only: "message retry=0" then its data line, over and over.
    lines = stdout.splitlines()
    assert lines[: 2 * (len(lines) // 2)] == ["message retry=0", "  x"] * (
        len(lines) // 2
    )
