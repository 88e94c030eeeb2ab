"""A real, throwaway ``redis-server`` for tests, on a free loopback port.

By default it runs without persistence (``--save "" --appendonly no``), so
a restart loses every key, as a Redis that crashed without a snapshot
would; ``persistent=True`` keeps an fsync'ed append-only file instead. It is
stopped by its PID, never by name.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import free_port
from tests.procs import port_open


class RedisServer:
    """One ``redis-server`` process that can be killed and started again."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.skip("needs redis-server (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        #: Keep data across a kill (an fsync'ed append-only file), or lose it.
        self.persistent = persistent
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again) on the same port; wait until it answers."""
        log = open(self.directory / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.directory)]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60  # generous: a loaded CI machine
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server by its PID, as a crash would; wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` for one test, stopped after it."""
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()
