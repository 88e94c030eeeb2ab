"""Start an example with the very command its docstring gives, on a free port.

The command after ``Run it:`` at the top of each example is what a newcomer
types, so it is what the tests run (plus ``--port``, or ``GSSE_PORT`` for a
``python examples/x.py`` form), as a subprocess with ready-polling, stopped
by its PID. ``(or: ...)`` after it is a second form, run by tests too, and
``Install:`` is the pip command the fresh-venv tests run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.procs import REPO
from tests.procs import Processes
from tests.procs import ServerProcess
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import gsse_command

EXAMPLES = REPO / "examples"
RUN_IT = re.compile(r"^Run it:\s+(.+?)(?:\s{2,}\(or: (.+)\))?\s*$", re.MULTILINE)
INSTALL = re.compile(r"^Install:\s+(.+?)(?:\s{2,}\(.*\))?\s*$", re.MULTILINE)


def _header(name: str) -> str:
    return (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")[:2000]


def example_command(name: str, alternative: bool = False) -> list[str]:
    """The ``Run it:`` command at the top of ``examples/<name>.py``.

    With ``alternative``, the ``(or: ...)`` form after it (``[]`` if none).
    """
    match = RUN_IT.search(_header(name))
    assert match, f"examples/{name}.py has no 'Run it: <command>' line at its top"
    if alternative:
        return shlex.split(match.group(2) or "")
    return shlex.split(match.group(1))


def example_install(name: str) -> list[str]:
    """The ``Install:`` command at the top of ``examples/<name>.py``."""
    match = INSTALL.search(_header(name))
    assert match, f"examples/{name}.py has no 'Install: pip install ...' line"
    return shlex.split(match.group(1))


def example_argv(
    args: list[str], port: int, bin_dir: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that run ``args`` on ``port``."""
    if args[:2] == ["gsse", "run"]:
        gsse = [str(bin_dir / "gsse")] if bin_dir else gsse_command()
        return [*gsse, *args[1:], "--port", str(port)], {}
    assert args[0] == "python" and len(args) == 2, f"unexpected command {args}"
    python = str(bin_dir / "python") if bin_dir else sys.executable
    return [python, args[1]], {"GSSE_PORT": str(port)}


def start_example(
    procs: Processes,
    name: str,
    *extra: str,
    env: dict[str, str] | None = None,
    alternative: bool = False,
    bin_dir: Path | None = None,
    cwd: Path = REPO,
) -> tuple[ServerProcess, int]:
    """Run the example's own command on a free port; return it and the port.

    ``extra`` arguments come last, so they win over the command's own
    (``--broker`` pointing at the test's Redis, say). ``alternative`` runs
    the ``(or: ...)`` form; ``bin_dir`` takes ``gsse`` and ``python`` from
    another virtual environment.
    """
    args = example_command(name, alternative)
    port = free_port()
    argv, port_env = example_argv(args, port, bin_dir)
    process = procs.start(
        [*argv, *extra], cwd=cwd, env=clean_env(**port_env, **(env or {}))
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
