"""Start an example with the very command its docstring gives, on a free port.

The command after ``Run it:`` at the top of each example is what a newcomer
types, so it is what the tests run (plus ``--port``), as a subprocess with
ready-polling, stopped by its PID.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.procs import REPO
from tests.procs import Processes
from tests.procs import ServerProcess
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import gsse_command

EXAMPLES = REPO / "examples"
RUN_IT = re.compile(r"^Run it:\s+(.+?)(?:\s{2,}\(.*)?$", re.MULTILINE)


def example_command(name: str) -> list[str]:
    """The ``Run it:`` command written at the top of ``examples/<name>.py``."""
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    match = RUN_IT.search(source[:2000])
    assert match, f"examples/{name}.py has no 'Run it: <command>' line at its top"
    return shlex.split(match.group(1))


def start_example(
    procs: Processes,
    name: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[ServerProcess, int]:
    """Run the example's own command on a free port; return it and the port.

    ``extra`` arguments come last, so they win over the command's own
    (``--broker`` pointing at the test's Redis, say).
    """
    args = example_command(name)
    assert args[:2] == ["gsse", "run"], f"unexpected command {args}"
    port = free_port()
    process = procs.start(
        [*gsse_command(), *args[1:], "--port", str(port), *extra],
        cwd=REPO,
        env=clean_env(**(env or {})),
    )
    process.wait_port(port, timeout=30)
    return process, port


def start_redis(procs: Processes) -> int:
    """A throwaway ``redis-server`` on a free port (skips when not installed)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.skip("needs redis-server (apt-get install redis-server)")
    port = free_port()
    server = procs.start(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no"]
    )
    server.wait_port(port, timeout=15)
    return port


def example_names() -> list[str]:
    """Every example module under ``examples/``."""
    return sorted(p.stem for p in Path(EXAMPLES).glob("*.py") if p.stem != "__init__")
