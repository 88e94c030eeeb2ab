"""Run commands such as ``gsse run`` in subprocesses, with every wait bounded.

A :class:`ServerProcess` sends the command's output to a log file (so a
failing test can show it), knows when the server is ready (its startup line
names the URL, or the port accepts connections), and is stopped by its PID.
:func:`processes` is a context manager that stops everything it started,
even when the test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import PATIENCE

REPO = Path(__file__).resolve().parent.parent

#: The startup line of ``gsse run``: "... serving APP on http://HOST:PORT ...".
READY = re.compile(r"serving \S+ on http://(?:\[[^\]]+\]|[^:\s]+):(\d+)")


def gsse_command() -> list[str]:
    """The installed ``gsse`` console script (skips the test when missing)."""
    path = shutil.which("gsse", path=str(Path(sys.executable).parent)) or shutil.which(
        "gsse"
    )
    if path is None:
        pytest.skip("the gsse command is not installed (pip install -e .)")
    return [path]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ``GSSE_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerProcess:
    """One command in a subprocess, its stdout and stderr in ``log_path``."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | str = REPO,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log_file = open(log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            self.args,
            cwd=str(cwd),
            env=env if env is not None else clean_env(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid
        self.port: int | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __repr__(self) -> str:
        return f"<ServerProcess pid={self.pid} {' '.join(self.args)!r}>"

    def _fail(self, why: str) -> None:
        raise AssertionError(f"{why}: {self.args}\n--- log ---\n{self.log}")

    def wait_ready(self, timeout: float = 20.0) -> int:
        """Wait for the startup line; return the port it names."""
        timeout = max(timeout, PATIENCE)  # see tests/helpers.py
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.log)
            if match:
                self.port = int(match.group(1))
                if port_open(self.port):
                    return self.port
            elif self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before it was ready")
            time.sleep(0.05)
        self._fail(f"not ready after {timeout} s")
        raise AssertionError  # unreachable

    def wait_port(self, port: int, timeout: float = 20.0) -> int:
        """Wait until ``port`` accepts connections (no startup line needed)."""
        timeout = max(timeout, PATIENCE)  # see tests/helpers.py
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(port):
                self.port = port
                return port
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before it was ready")
            time.sleep(0.05)
        self._fail(f"port {port} not open after {timeout} s")
        raise AssertionError  # unreachable

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the log matches ``pattern``; return the match."""
        timeout = max(timeout, PATIENCE)  # see tests/helpers.py
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log)
            if match:
                return match
            time.sleep(0.05)
        self._fail(f"{pattern!r} not in the log after {timeout} s")
        raise AssertionError  # unreachable

    def send(self, signum: int) -> None:
        """Send ``signum`` to the process (by PID)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; return its exit code."""
        timeout = max(timeout, PATIENCE)  # see tests/helpers.py
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {timeout} s")
            raise  # unreachable

    def run_to_end(self, timeout: float = 20.0) -> tuple[int, str]:
        """For commands that exit by themselves: (exit code, output)."""
        return self.wait(timeout), self.log

    def stop(self, timeout: float = 5.0) -> None:
        """End the process by its PID: SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log_file.close()


class Processes:
    """Starts processes and remembers them so that all are stopped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[ServerProcess] = []
        #: PIDs started indirectly (reload children, workers) to kill at the end.
        self.extra_pids: list[int] = []

    def start(
        self,
        args: Sequence[str],
        *,
        cwd: Path | str = REPO,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        log_path = self.directory / f"process-{len(self.started)}.log"
        process = ServerProcess(args, log_path, cwd=cwd, env=env)
        self.started.append(process)
        return process

    def gsse(
        self,
        *args: str,
        cwd: Path | str = REPO,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        """Start ``gsse <args>``."""
        return self.start([*gsse_command(), *args], cwd=cwd, env=env)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def processes(directory: Path) -> Iterator[Processes]:
    """Start processes in a ``with`` block; every one is stopped at its end."""
    manager = Processes(directory)
    try:
        yield manager
    finally:
        manager.stop_all()
