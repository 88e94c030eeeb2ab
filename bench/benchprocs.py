"""Child processes for the bench scripts: a free port, waiting for it, stopping.

Shared by ``presence.py``, ``runs_load.py`` and ``redis_channels.py``
(each runs its servers and ``redis-server`` as children, stopped by PID).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(
    port: int, proc: subprocess.Popen[Any], what: str, seconds: float = 30
) -> None:
    """Return once ``port`` accepts; raise if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port} in {seconds:g} s")


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM ``proc`` (by its PID), then SIGKILL it if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
