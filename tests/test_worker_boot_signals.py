"""A shutdown signal that reaches a gunicorn worker while it boots is not lost.

Until a worker installs its own handlers it runs the master's, inherited by
fork, which only queue the signal for the master's loop; the worker then
served on until the master killed it at the end of the graceful timeout.
"""

from __future__ import annotations

import queue
import signal
import sys
from pathlib import Path

import pytest

from gsse.workers import _Arbiter
from tests.helpers import wait_until
from tests.procs import free_port
from tests.procs import processes

#: A gunicorn config whose post_fork hook holds the new worker before it
#: installs its signal handlers, and says so in a file.
CONFIG = """
import os
import time


def post_fork(server, worker):
    with open({marker!r}, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(3)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_worker_boot_shuts_it_down(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """The master is told to stop while its worker boots: everything exits 0."""
    marker = tmp_path / "booting"
    config = tmp_path / "gunicorn_conf.py"
    config.write_text(CONFIG.format(marker=str(marker)))
    with processes(tmp_path) as procs:
        proc = procs.start(
            [
                sys.executable, "-m", "gunicorn",
                "-k", "gsse.workers.SSEWorker", "-w", "1",
                "-b", f"127.0.0.1:{free_port()}",
                "--graceful-timeout", "600",  # past every bound of this test
                "-c", str(config),
                "tests.apps.cli_app:app",
            ]
        )  # fmt: skip
        assert wait_until(marker.exists, timeout=60), proc.log
        proc.send(sig)
        assert proc.wait(60) == 0, proc.log
    assert "shutting down" in proc.log


def test_the_master_keeps_the_signals_after_a_shutdown_signal() -> None:
    """Signals taken in the same wake-up as a shutdown signal stay queued.

    gunicorn's loop reads every queued signal at once and the first shutdown
    signal ends it, so a second SIGINT in that batch was dropped, and with it
    the quick shutdown that the master's stop() looks for in the queue.
    """
    arbiter = _Arbiter.__new__(_Arbiter)
    arbiter.SIG_QUEUE = queue.SimpleQueue()
    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGINT, signal.SIGHUP):
        arbiter.SIG_QUEUE.put_nowait(signum)
    # 1. the loop handles up to the first shutdown signal
    assert arbiter.wait_for_signals(timeout=0.1) == [signal.SIGCHLD, signal.SIGINT]
    # 2. the rest is still there, in order, for stop() to find
    left = [arbiter.SIG_QUEUE.get_nowait() for _ in range(arbiter.SIG_QUEUE.qsize())]
    assert left == [signal.SIGINT, signal.SIGHUP]
