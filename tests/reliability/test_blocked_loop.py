"""A callback that blocks the loop for good is reported, and signals still work.

Each test runs ``gsse run tests.apps.blocking_app:app`` (which starts a
watchdog) and opens a stream whose callback never yields: a pure-Python busy
loop, an unpatched ``time.sleep`` or a blocking read on a real socket. The
loop never runs again, so everything asserted here happened outside it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RawStream
from tests.procs import Processes
from tests.procs import ServerProcess
from tests.procs import processes

pytestmark = pytest.mark.timeout(60)

APP = "tests.apps.blocking_app:app"
BLOCKED = "WARNING gsse.watchdog: the event loop has been blocked"
KINDS = {
    "spin": "spin_forever",
    "sleep": "sleep_unpatched",
    "socket": "read_unpatched_socket",
}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as manager:
        yield manager


def block_loop(procs: Processes, kind: str, *extra: str) -> ServerProcess:
    """Start the app, block its loop with ``kind``; return once it is blocked."""
    proc = procs.gsse("run", APP, "--port", "0", *extra)
    port = proc.wait_ready()
    with RawStream(port, f"/block/{kind}") as stream:
        stream.read_until(b"data: blocking")
    proc.wait_log(BLOCKED, timeout=15)  # the watchdog saw the loop stuck
    return proc


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_blocked_loop_is_logged_with_its_stack_while_it_is_blocked(
    procs: Processes, kind: str
) -> None:
    """The watchdog thread logs a WARNING naming the blocking function, loop stuck."""
    proc = block_loop(procs, kind)
    match = proc.wait_log(BLOCKED, timeout=15)
    # The record, stack included, is one write: it is all there.
    assert KINDS[kind] in proc.log[match.start() :], proc.log
    # One warning per stall, however long it lasts.
    assert proc.log.count("the event loop has been blocked") == 1
    assert "runs again" not in proc.log


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_second_sigint_exits_while_the_loop_is_blocked(
    procs: Processes, kind: str
) -> None:
    """Ctrl-C twice ends a process whose loop never runs again, with 130."""
    proc = block_loop(procs, kind, "--graceful-timeout", "600")
    proc.send(signal.SIGINT)
    proc.wait_log("SIGINT received while the event loop is blocked", timeout=15)
    proc.send(signal.SIGINT)
    assert proc.wait(20) == 130, proc.log
    assert "second SIGINT: exiting at once" in proc.log


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sigterm_ends_a_blocked_process_after_the_graceful_timeout(
    procs: Processes, kind: str
) -> None:
    """SIGTERM ends a process whose loop never runs again (status 1, stack logged)."""
    proc = block_loop(procs, kind, "--graceful-timeout", "0.5")
    proc.send(signal.SIGTERM)
    assert proc.wait(30) == 1, proc.log
    match = proc.wait_log(r"(?s)the graceful shutdown cannot run.*", timeout=5)
    assert KINDS[kind] in match.group(0)


def test_sigterm_on_a_free_loop_is_still_graceful(procs: Processes) -> None:
    """With the loop free, SIGTERM shuts down gracefully and exits 0 as before."""
    proc = procs.gsse("run", APP, "--port", "0", "--graceful-timeout", "0.5")
    proc.wait_ready()
    proc.send(signal.SIGTERM)
    assert proc.wait(20) == 0, proc.log
    assert "SIGTERM received: shutting down" in proc.log
    assert "blocked" not in proc.log
