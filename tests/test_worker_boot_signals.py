"""A shutdown signal that reaches a gunicorn worker while it boots is not lost.

Until a worker installs its own handlers it runs the master's, inherited by
fork, which only queue the signal for the master's loop; the worker then
served on until the master killed it at the end of the graceful timeout.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

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
