"""A newcomer's path: install gsse into a fresh venv, run what each extra enables.

One virtual environment per module, made with ``python -m venv`` and the
repository's wheel, never with the ``[test]`` extra. The extras go in one
by one, in a fixed order; before each, the test checks that what the extra
brings is absent, so each step proves that this extra (and nothing before
it) enables the feature. Examples are installed and run exactly as their
docstrings say (``Install:``, ``Run it:``), from a copy of ``examples/``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
import requests

from tests.examples.support import example_argv
from tests.examples.support import example_command
from tests.examples.support import example_install
from tests.examples.support import example_names
from tests.examples.support import start_example
from tests.examples.support import start_redis
from tests.helpers import RawStream
from tests.procs import REPO
from tests.procs import Processes
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import processes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: Seconds one pip command may take.
PIP_TIMEOUT = 600
#: Extras in the order they go in, and the modules each must bring.
EXTRAS = {
    "workers": ("gunicorn", "packaging", "gunicorn.workers.ggevent"),
    "redis": ("redis",),
    "metrics": ("prometheus_client",),
    "reload": ("watchfiles",),
}
#: The flag of ``gsse run`` that each extra enables.
FLAGS = {"workers": ("-w", "2"), "reload": ("--reload",)}
#: Examples whose Install: line is plain ``pip install gsse``.
PLAIN = "pip install gsse"


@dataclass
class Venv:
    """A fresh virtual environment with gsse from the repository's wheel."""

    root: Path
    wheel: Path
    workdir: Path
    installed: list[str] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(self, *args: str, timeout: float = PIP_TIMEOUT) -> str:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=clean_env()
        )
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def pip_install(self, *requirements: str) -> None:
        self.run(str(self.bin / "python"), "-m", "pip", "install", "--quiet",
                 *requirements)  # fmt: skip

    def imports(self, module: str) -> bool:
        done = subprocess.run(
            [str(self.bin / "python"), "-c", f"import {module}"],
            capture_output=True,
            timeout=60,
            env=clean_env(),
        )
        return done.returncode == 0

    def requirement(self, token: str) -> str:
        """``gsse`` or ``gsse[x]`` as written in a doc, pointed at the wheel."""
        if token == "gsse" or token.startswith("gsse["):
            return str(self.wheel) + token[len("gsse") :]
        return token

    def install_as_documented(self, command: list[str]) -> None:
        """Run a documented ``pip install ...`` line against the wheel."""
        assert command[:2] == ["pip", "install"], command
        self.pip_install(*(self.requirement(token) for token in command[2:]))

    def check_asks_for(self, extra: str) -> None:
        """The flag that needs ``extra``, run without it, names the extra."""
        argv = [str(self.bin / "gsse"), "run", "examples.counter:app", *FLAGS[extra]]
        done = subprocess.run(
            [*argv, "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
            env=clean_env(),
        )
        assert done.returncode == 1, done.stderr
        assert f"pip install 'gsse[{extra}]'" in done.stderr

    def add_extra(self, extra: str) -> None:
        """Install ``gsse[extra]``, after checking that it brings something new."""
        if extra in self.installed:
            return
        for earlier in EXTRAS:
            if earlier == extra:
                break
            self.add_extra(earlier)
        modules = EXTRAS[extra]
        present = [m for m in modules if self.imports(m)]
        assert not present, f"{present} already there before gsse[{extra}]"
        if extra in FLAGS:
            self.check_asks_for(extra)
        self.install_as_documented(["pip", "install", f"gsse[{extra}]"])
        missing = [m for m in modules if not self.imports(m)]
        assert not missing, f"gsse[{extra}] did not bring {missing}"
        self.installed.append(extra)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository built as a wheel, once for the module."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
         str(out), str(REPO)],
        check=True, timeout=PIP_TIMEOUT, env=clean_env(),
    )  # fmt: skip
    (built,) = out.glob("gsse-*.whl")
    return built


def make_venv(root: Path, wheel: Path, workdir: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    venv = Venv(root, wheel, workdir)
    venv.install_as_documented(PLAIN.split())
    assert venv.imports("gsse") and venv.imports("gevent")
    assert not venv.imports("pytest"), "the fresh venv must not have test extras"
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path, workdir: Path) -> Venv:
    """One fresh venv for the extras, which go in one by one."""
    return make_venv(tmp_path_factory.mktemp("venv") / "env", wheel, workdir)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a copy of ``examples/`` and nothing else of the repo."""
    work = tmp_path_factory.mktemp("work")
    shutil.copytree(REPO / "examples", work / "examples")
    return work


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as manager:
        yield manager


# -- reading one event from each example --------------------------------------
#: Where each example streams, the event to expect and what makes it come.
STREAMS: dict[str, tuple[str, str]] = {
    "counter": ("/events", "tick"),
    "clock": ("/time", "time"),
    "progress": ("/job?steps=2", "progress"),
    "dashboard": ("/metrics/stream", "sample"),
    "chat": ("/rooms/lobby/events", "chat"),
    "online": ("/rooms/lobby/events?name=ann", "join"),
    "flask_legacy": ("/feed", "order"),
    "price_board": ("/prices", "price"),
    "redis_workers": ("/board", "hello"),
    "secure": ("/events", "time"),
    "assistant": ("/runs/{id}", "token"),
}


def test_every_example_is_run_here() -> None:
    """A new example gets a fresh-venv run too."""
    assert sorted(STREAMS) == example_names()


def read_event(name: str, port: int) -> str:
    """Open the example's stream, make it send something; the event's type."""
    path, _ = STREAMS[name]
    base = f"http://127.0.0.1:{port}"
    headers: dict[str, str] = {}
    if name == "secure":
        cookie = requests.get(f"{base}/login", timeout=10).cookies["session"]
        headers["Cookie"] = f"session={cookie}"
    if name == "assistant":  # a question starts a run; its id names the stream
        asked = requests.post(f"{base}/ask", data={"question": "hi"}, timeout=10)
        path = path.format(id=asked.json()["id"])
    with RawStream(port, path, headers=headers, timeout=30) as stream:
        assert stream.status == 200
        if name == "chat":
            return _chat_event(base, stream)
        if name == "flask_legacy":
            order = {"item": "tea", "quantity": "1"}
            json_please = {"Accept": "application/json"}
            requests.post(f"{base}/orders", data=order, headers=json_please,
                          timeout=10)  # fmt: skip
        message = stream.events(1, timeout=30)[0]  # a snapshot sends several
    return message.event


def _chat_event(base: str, stream: RawStream) -> str | None:
    """Post to the room until the stream hears it (bounded: 6 tries).

    A stream's subscription is live a moment after its headers arrive (on
    Redis, once its reader follows the channel); a message posted in that
    moment is before the stream's start, so it is posted again.
    """
    posted = {"name": "ann", "text": "hi"}
    for _ in range(6):
        requests.post(f"{base}/rooms/lobby", data=posted, timeout=10)
        try:
            (message,) = stream.events(1, timeout=5)
        except TimeoutError:
            continue
        return message.event
    raise AssertionError("the chat stream heard none of 6 posts")


def run_documented(
    procs: Processes, venv: Venv, workdir: Path, name: str, *extra: str
) -> None:
    """Run each documented form of ``name``; each streams its first event."""
    for alternative in (False, True):
        if not example_command(name, alternative):
            continue
        proc, port = start_example(
            procs, name, *extra, alternative=alternative, bin_dir=venv.bin,
            cwd=workdir,
        )  # fmt: skip
        assert read_event(name, port) == STREAMS[name][1]
        proc.send(signal.SIGINT)
        assert proc.wait(30) == 0, proc.log


def test_plain_install_runs_the_plain_examples(
    venv: Venv, workdir: Path, procs: Processes
) -> None:
    """``pip install gsse`` runs every example that says so, in each form."""
    plain = [n for n in example_names() if " ".join(example_install(n)) == PLAIN]
    assert {"counter", "clock", "chat", "dashboard", "progress"} <= set(plain)
    for name in plain:
        run_documented(procs, venv, workdir, name)


def test_workers_extra_runs_workers_and_gunicorn_gevent(
    venv: Venv, workdir: Path, procs: Processes
) -> None:
    """gsse[workers]: ``gsse run -w 2`` and ``gunicorn -k gevent`` both stream."""
    venv.add_extra("workers")
    port = free_port()
    gsse = str(venv.bin / "gsse")
    proc = procs.start(
        [gsse, "run", "examples.counter:app", "-w", "2", "--port", str(port)],
        cwd=workdir,
    )
    proc.wait_port(port, timeout=60)
    assert read_event("counter", port) == "tick"
    proc.send(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.log
    for worker in ("gevent", "gsse.workers.SSEWorker"):
        port = free_port()
        proc = procs.start(
            [str(venv.bin / "gunicorn"), "-k", worker, "--bind",
             f"127.0.0.1:{port}", "examples.counter:app"],
            cwd=workdir,
        )  # fmt: skip
        proc.wait_port(port, timeout=60)
        assert read_event("counter", port) == "tick"
        proc.stop()


def test_redis_extra_shares_channels_through_redis(
    venv: Venv, workdir: Path, procs: Processes
) -> None:
    """gsse[redis]: a redis:// broker, and redis_workers as documented."""
    venv.add_extra("redis")
    broker = f"redis://127.0.0.1:{start_redis(procs)}/0"
    _, port = start_example(
        procs, "chat", "--broker", broker, bin_dir=venv.bin, cwd=workdir
    )
    assert read_event("chat", port) == "chat"
    assert "gsse[redis,workers]" in example_install("redis_workers")
    venv.install_as_documented(example_install("redis_workers"))
    run_documented(procs, venv, workdir, "redis_workers", "--broker", broker)


def test_metrics_extra_serves_metrics(
    venv: Venv, workdir: Path, procs: Processes
) -> None:
    """gsse[metrics]: the secure example, as documented, serves /metrics.

    The metrics are private: 401 without the session cookie, the
    Prometheus text with it.
    """
    venv.add_extra("metrics")
    assert example_install("secure") == ["pip", "install", "gsse[metrics]"]
    venv.install_as_documented(example_install("secure"))
    run_documented(procs, venv, workdir, "secure")
    _, port = start_example(procs, "secure", bin_dir=venv.bin, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/metrics", timeout=60).status_code == 401
    with requests.Session() as session:
        assert session.get(f"{base}/login", timeout=60).status_code == 200
        metrics = session.get(f"{base}/metrics", timeout=60)
    assert metrics.status_code == 200
    assert "gsse_streams_total" in metrics.text


def test_reload_extra_starts_the_reloader(
    venv: Venv, workdir: Path, procs: Processes
) -> None:
    """gsse[reload]: ``gsse run --reload`` serves, and stops on SIGTERM."""
    venv.add_extra("reload")
    argv, _ = example_argv(example_command("counter"), free_port(), venv.bin)
    proc = procs.start([*argv, "--reload"], cwd=workdir)
    child = proc.wait_log(r"\[(\d+)\] INFO gsse: gsse .* serving", timeout=60)
    procs.extra_pids.append(int(child.group(1)))
    assert "reloader (pid" in proc.log
    assert read_event("counter", int(argv[-1])) == "tick"
    proc.send(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.log


def test_flask_example_as_documented(
    tmp_path: Path, wheel: Path, workdir: Path, procs: Processes
) -> None:
    """flask_legacy: its Install: line in a fresh venv, then its Run it: line."""
    flask_venv = make_venv(tmp_path / "flask", wheel, workdir)
    assert not flask_venv.imports("flask")
    flask_venv.install_as_documented(example_install("flask_legacy"))
    run_documented(procs, flask_venv, workdir, "flask_legacy")
