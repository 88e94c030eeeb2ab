"""``gsse tail``: an unreachable URL, ``--max-retries`` and one-line notices."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import gevent
import pytest

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter

from .procs import clean_env
from .procs import free_port
from .procs import gsse_command


def once_app() -> App:
    """/once sends one event (asking for 50 ms reconnections) and ends."""
    app = App()

    @app.route("/once")
    def once(event: Event) -> None:
        def send(writer: SSEWriter) -> None:
            with writer:
                writer.send_event("only", id="1", retry=50)

        event.start_sse()
        event.set_stream_callback(send)

    return app


def run_tail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gsse_command(), "tail", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "no-such-host.invalid"])
def test_tail_first_connection_failing_exits_1(host: str) -> None:
    """A URL nobody answers on the first try: one short Error line and exit 1."""
    done = run_tail(f"http://{host}:{free_port()}/events")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Error: cannot connect to http://{host}:"), line
    assert "HTTPConnectionPool" not in line and "object at 0x" not in line


def test_tail_first_refusal_names_the_reason() -> None:
    """The refusal is told in the socket's own words, not requests' wrappers."""
    done = run_tail(f"http://127.0.0.1:{free_port()}/events", "--max-retries", "3")
    assert done.returncode == 1
    assert done.stderr.strip().endswith(": Connection refused"), done.stderr


def test_tail_max_retries_gives_up_with_one_line_notices(
    serve: Callable[..., Server],
) -> None:
    """After the server goes away, N refused reconnections end tail with 1.

    Each reconnection notice is one short line that says why.
    """
    server = serve(once_app(), ping=0)
    proc = subprocess.Popen(
        [*gsse_command(), "tail", f"{server.url}/once", "--max-retries", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        with gevent.Timeout(15):
            assert proc.stdout is not None
            assert proc.stdout.readline() == "message id=1 retry=50\n"
        server.stop(graceful_timeout=0)  # from now on: connection refused
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 1, stderr
    notices = stderr.splitlines()
    refused = [line for line in notices if "Connection refused; reconnecting" in line]
    assert len(refused) == 2, stderr
    assert all(line.startswith("gsse tail: http://127.0.0.1:") for line in refused)
    assert notices[-1] == (
        f"Error: gave up on {server.url}/once after 2 failed reconnection"
        " attempt(s) in a row: Connection refused"
    )
    assert "HTTPConnectionPool" not in stderr


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_tail_max_retries_must_be_a_count(value: str) -> None:
    """--max-retries takes a whole number >= 0; anything else is usage (2)."""
    done = run_tail("http://127.0.0.1:9/", "--max-retries", value)
    assert done.returncode == 2
    assert f"expected a whole number >= 0, got {value!r}" in done.stderr
