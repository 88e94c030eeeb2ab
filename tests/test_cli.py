"""``gsse run``: the real command in a subprocess, over real sockets."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gsse import __version__

from .helpers import RawStream
from .helpers import StreamClosed
from .helpers import http_get
from .procs import Processes
from .procs import clean_env
from .procs import free_port
from .procs import gsse_command
from .procs import processes

APP = "tests.apps.cli_app:app"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start processes; each is stopped by PID after the test."""
    with processes(tmp_path) as manager:
        yield manager


def get_json(port: int, path: str) -> dict[str, object]:
    status, body = http_get(port, path)
    assert status == 200, body
    result = json.loads(body)
    assert isinstance(result, dict)
    return result


def run_to_end(procs: Processes, *args: str, **env: str) -> tuple[int, str]:
    """Run ``gsse <args>`` that is expected to exit by itself."""
    return procs.gsse(*args, env=clean_env(**env)).run_to_end()


# -- help, version, entry points ---------------------------------------------
def test_help_documents_every_option(procs: Processes) -> None:
    """``gsse run --help`` names every flag, its variable and the exit codes."""
    code, out = run_to_end(procs, "run", "--help")
    assert code == 0
    for flag in (
        "--host",
        "--port",
        "--workers",
        "--threads",
        "--handlers",
        "--ping",
        "--send-timeout",
        "--graceful-timeout",
        "--log-level",
        "--broker",
        "--gc",
        "--reload",
        "--factory",
        "--version",
    ):
        assert flag in out
        if flag != "--version":
            env = "GSSE_" + flag[2:].replace("-", "_").upper()
            assert env in out, env
    assert "redis://" in out  # workers share channels only through a broker
    assert "exit codes" in out


def test_version(procs: Processes) -> None:
    """``--version`` works before and after ``run``."""
    for args in (("--version",), ("run", "--version")):
        code, out = run_to_end(procs, *args)
        assert (code, out.strip()) == (0, f"gsse {__version__}")


def test_python_dash_m(procs: Processes) -> None:
    """``python -m gsse run`` serves like the ``gsse`` command."""
    proc = procs.start([sys.executable, "-m", "gsse", "run", APP, "--port", "0"])
    port = proc.wait_ready()
    assert http_get(port, "/") == (200, b"ok")


# -- options and environment variables --------------------------------------
def test_options_reach_server_and_app(procs: Processes) -> None:
    """Each option ends up where it belongs, and the startup line says so."""
    port = free_port()
    proc = procs.gsse(
        "run", APP, "--host", "127.0.0.1", "--port", str(port),
        "--ping", "3", "--send-timeout", "7", "--graceful-timeout", "4",
        "--broker", "memory://",
    )  # fmt: skip
    assert proc.wait_ready() == port
    config = get_json(port, "/config")
    assert config["ping"] == 3.0
    assert config["send_timeout"] == 7.0
    assert config["graceful_timeout"] == 4.0
    assert config["broker"] == "memory://"
    line = proc.wait_log(r"serving .*").group(0)
    assert f"http://127.0.0.1:{port}" in line
    assert "1 worker" in line and "broker memory://" in line


def test_environment_variables_and_flags_win(procs: Processes) -> None:
    """``GSSE_*`` variables set options; a flag on the command line wins."""
    port = free_port()
    env = clean_env(
        GSSE_PORT=str(port),
        GSSE_PING="3",
        GSSE_SEND_TIMEOUT="9",
        GSSE_GRACEFUL_TIMEOUT="2.5",
        GSSE_BROKER="memory://",
        GSSE_LOG_LEVEL="DEBUG",
    )
    proc = procs.gsse("run", APP, "--ping", "5", env=env)
    assert proc.wait_ready() == port
    config = get_json(port, "/config")
    assert config["ping"] == 5.0  # the flag
    assert config["send_timeout"] == 9.0
    assert config["graceful_timeout"] == 2.5
    assert config["broker"] == "memory://"
    assert "DEBUG" in proc.log


def test_limit_flags_and_variables_refuse_over_the_limit(procs: Processes) -> None:
    """--max-streams-per-ip answers 429, --max-connections 503 (or GSSE_*)."""
    env = clean_env(GSSE_MAX_CONNECTIONS="2")
    proc = procs.gsse(
        "run", APP, "--port", "0", "--max-streams-per-ip", "1", env=env
    )  # fmt: skip
    port = proc.wait_ready()
    config = get_json(port, "/config")
    assert (config["max_connections"], config["max_streams_per_ip"]) == (2, 1)
    close = {"Connection": "close"}
    with RawStream(port, "/events") as first:
        first.read_until(b"data:")
        with RawStream(port, "/events", headers=close) as second:
            assert second.status == 429
            assert "retry-after" in second.headers
        # An idle connection is the second; a third request is one too many.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            time.sleep(0.2)  # let the server accept it
            with RawStream(port, "/", headers=close) as third:
                assert third.status == 503
                assert "retry-after" in third.headers
    assert http_get(port, "/")[0] == 200  # below the limits again


def test_broker_password_is_masked(procs: Processes) -> None:
    """``--broker`` reaches the app as GSSE_BROKER; the log hides the password."""
    url = "redis://:s3cret@127.0.0.1:1/0"
    proc = procs.gsse("run", APP, "--port", "0", "--broker", url)
    port = proc.wait_ready()
    assert get_json(port, "/config")["broker"] == url
    assert "s3cret" not in proc.log
    assert "broker redis://:***@127.0.0.1:1/0" in proc.log


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "the following arguments are required: MODULE:APP"),
        (("--port", "-1"), {}, "--port: must be at least 0"),
        (("--port", "70000"), {}, "a port is 0-65535"),
        (("--workers", "0"), {}, "--workers: must be at least 1"),
        (("--ping", "soon"), {}, "expected a number of seconds"),
        (("--log-level", "loud"), {}, "choose from critical, error"),
        (("--handlers", "fibers"), {}, "choose from greenlets, threads"),
        (("--no-such-flag",), {}, "unrecognized arguments: --no-such-flag"),
        ((), {"GSSE_PORT": "eighty"}, "GSSE_PORT='eighty'"),
        ((), {"GSSE_RELOAD": "maybe"}, "GSSE_RELOAD='maybe'"),
        (("--gc", "off"), {}, "--gc"),
        ((), {"GSSE_GC": "never"}, "GSSE_GC='never'"),
    ],
)
def test_usage_errors_exit_2(
    procs: Processes, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """Bad flags and bad ``GSSE_*`` values: a usage message and exit code 2."""
    app = () if not args and not env else (APP,)
    code, out = run_to_end(procs, "run", *app, *args, **env)
    assert code == 2, out
    assert message in out
    assert "usage: gsse run" in out


@pytest.mark.parametrize(
    ("args", "env", "full_every", "frozen"),
    [
        ((), {}, 1000, True),  # tuned by default
        (("--gc", "python"), {}, 10, False),
        ((), {"GSSE_GC": "python"}, 10, False),
        (("--workers", "2"), {}, 1000, True),
        (("--workers", "2", "--gc", "python"), {}, 10, False),
    ],
)
def test_gc_tuning(
    procs: Processes,
    args: tuple[str, ...],
    env: dict[str, str],
    full_every: int,
    frozen: bool,
) -> None:
    """--gc tuned (the default) freezes the loaded app and makes full
    collections rare, in workers too; python leaves Python's defaults."""
    proc = procs.gsse("run", APP, "--port", "0", *args, env=clean_env(**env))
    state = get_json(proc.wait_ready(), "/gc")
    assert state["thresholds"] == [700, 10, full_every]
    assert (state["frozen"] > 0) is frozen


# -- errors in the target ----------------------------------------------------
@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("tests.apps.no_such_module:app", (), "could not import module"),
        ("tests.apps.cli_app:nothing", (), "has no attribute 'nothing'"),
        ("tests.apps.cli_app:not_an_app", (), "is an int, not a WSGI application"),
        ("tests.apps.cli_app:make_app", (), "pass --factory"),
        ("tests/apps/cli_app.py", (), "'tests.apps.cli_app:app'"),
        ("tests.apps.cli_app:not_an_app", ("--factory",), "not a function"),
    ],
)
def test_app_not_found_exits_2(
    procs: Processes, target: str, extra: tuple[str, ...], message: str
) -> None:
    """A target that names no app: one clear line, no traceback, exit code 2."""
    code, out = run_to_end(procs, "run", target, "--port", "0", *extra)
    assert code == 2, out
    assert message in out
    assert out.count("\n") == 1 and out.startswith("Error: ")
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("target", "extra", "cause"),
    [
        ("tests.apps.raises_on_import", (), "fails on import on purpose"),
        ("tests.apps.imports_missing", (), "gsse_no_such_dependency"),
        ("tests.apps.cli_app:create_broken_app", ("--factory",), "on purpose"),
    ],
)
def test_app_failing_exits_1(
    procs: Processes, target: str, extra: tuple[str, ...], cause: str
) -> None:
    """An app that raises while loading: its traceback, one line, exit code 1."""
    code, out = run_to_end(procs, "run", target, "--port", "0", *extra)
    assert code == 1, out
    assert "Traceback (most recent call last)" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Error: ") and cause in last


def test_syntax_error_exits_1(procs: Processes, tmp_path: Path) -> None:
    """A syntax error in the app module shows where it is and exits with 1."""
    (tmp_path / "typo_app.py").write_text("app = (\n")
    proc = procs.gsse("run", "typo_app:app", "--port", "0", cwd=tmp_path)
    code, out = proc.run_to_end()
    assert code == 1, out
    assert "SyntaxError" in out and "typo_app.py" in out


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--factory",), {}), ((), {"GSSE_FACTORY": "1"})],
    ids=["flag", "env"],
)
def test_factory(procs: Processes, args: tuple[str, ...], env: dict[str, str]) -> None:
    """``--factory`` (or GSSE_FACTORY=1) calls the named function to get the app."""
    target = "tests.apps.cli_app:create_app"
    proc = procs.gsse("run", target, "--port", "0", *args, env=clean_env(**env))
    assert http_get(proc.wait_ready(), "/") == (200, b"ok")


def test_port_in_use_exits_1(procs: Processes) -> None:
    """A port that is taken: a clear line and exit code 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = run_to_end(procs, "run", APP, "--port", str(port))
    assert code == 1, out
    assert f"Error: cannot listen on 127.0.0.1:{port}" in out


# -- logging -----------------------------------------------------------------
def test_log_level_info_has_access_log(procs: Processes) -> None:
    """At the default level the access log shows each request."""
    proc = procs.gsse("run", APP, "--port", "0")
    port = proc.wait_ready()
    http_get(port, "/pid")
    proc.wait_log(r'gsse\.access: .*"GET /pid HTTP/1\.1" 200')


def test_log_level_warning_is_quiet(procs: Processes) -> None:
    """``--log-level warning`` hides the startup line and the access log."""
    port = free_port()
    proc = procs.gsse("run", APP, "--port", str(port), "--log-level", "warning")
    proc.wait_port(port)
    assert http_get(port, "/") == (200, b"ok")
    proc.send(signal.SIGTERM)
    assert proc.wait() == 0
    assert proc.log == ""


# -- graceful shutdown -------------------------------------------------------
def open_streams(port: int, path: str, count: int) -> list[RawStream]:
    """``count`` streams, each past its first event."""
    streams = [RawStream(port, path) for _ in range(count)]
    for stream in streams:
        stream.read_until(b"tick 0")
    return streams


def assert_ended_cleanly(streams: list[RawStream], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for stream in streams:
        with stream:
            stream.read_to_end(max(deadline - time.monotonic(), 0.1))
            assert stream.ended, stream.body[-200:]
            assert not stream.cut


def test_sigterm_with_100_streams(procs: Processes) -> None:
    """SIGTERM: 100 streams say goodbye, end with the last chunk, exit 0."""
    # 1. a server with 100 open streams, each ticking
    proc = procs.gsse("run", APP, "--port", "0", "--graceful-timeout", "60")
    streams = open_streams(proc.wait_ready(), "/events", 100)
    # 2. SIGTERM
    proc.send(signal.SIGTERM)
    # 3. every callback saw shutting_down, sent "bye", and its stream ended
    #    with the 0-length chunk (never a reset)
    for stream in streams:
        stream.read_until(b"data: bye\n\n")
    assert_ended_cleanly(streams, timeout=10)
    # 4. the process exits with 0 without waiting for the grace period: no
    #    stream was left for it to close
    assert proc.wait() == 0
    assert "still open after the grace period" not in proc.log
    assert "gsse stopped" in proc.log


def test_sigterm_closes_streams_that_ignore_it(procs: Processes) -> None:
    """Streams still open when the grace period ends are closed cleanly."""
    # 1. callbacks that never look at writer.shutting_down
    proc = procs.gsse("run", APP, "--port", "0", "--graceful-timeout", "1")
    streams = open_streams(proc.wait_ready(), "/stubborn", 5)
    # 2. SIGTERM; after the grace period the server ends every stream
    proc.send(signal.SIGTERM)
    assert_ended_cleanly(streams, timeout=10)
    # 3. exit 0, the closed streams counted in the log
    assert proc.wait() == 0
    assert "closed 5 stream(s) still open after the grace period" in proc.log


def test_sigint_is_graceful_too(procs: Processes) -> None:
    """One Ctrl-C (SIGINT) shuts down like SIGTERM."""
    proc = procs.gsse("run", APP, "--port", "0")
    streams = open_streams(proc.wait_ready(), "/events", 3)
    proc.send(signal.SIGINT)
    assert_ended_cleanly(streams, timeout=10)
    assert proc.wait(10) == 0
    assert all(b"data: bye" in stream.body for stream in streams)


def test_second_sigint_exits_at_once(procs: Processes) -> None:
    """A second Ctrl-C does not wait for the grace period: exit code 130."""
    # 1. a stream that ignores the shutdown, and a long grace period
    proc = procs.gsse("run", APP, "--port", "0", "--graceful-timeout", "600")
    streams = open_streams(proc.wait_ready(), "/stubborn", 1)
    # 2. the first SIGINT starts the graceful shutdown
    proc.send(signal.SIGINT)
    proc.wait_log("SIGINT received: shutting down")
    # 3. the second one ends the process at once
    proc.send(signal.SIGINT)
    assert proc.wait(10) == 130
    assert "second SIGINT: exiting at once" in proc.log
    with streams[0] as stream:
        stream.read_to_end(5)  # the connection is gone with the process
        assert stream.cut


# -- workers -----------------------------------------------------------------
@pytest.mark.slow
def test_workers_serve_from_several_processes(procs: Processes) -> None:
    """``--workers 2``: both processes answer on one port; SIGTERM exits 0."""
    # 1. two workers behind gunicorn's arbiter
    proc = procs.gsse(
        "run", APP, "--port", "0", "--workers", "2", "--ping", "4",
        "--broker", "memory://",
    )  # fmt: skip
    port = proc.wait_ready()
    assert "2 workers, broker memory://" in proc.log
    # 2. requests reach both (bounded by count and time)
    pids: set[bytes] = set()
    deadline = time.monotonic() + 60
    for _ in range(3000):
        status, body = http_get(port, "/pid")
        assert status == 200
        pids.add(body)
        if len(pids) == 2 or time.monotonic() > deadline:
            break
        # The kernel hands connections to whichever worker wakes first;
        # pausing lets the other (maybe still booting) one in. (400 quick
        # requests could all end before the second worker was up.)
        time.sleep(0.02)
    assert len(pids) == 2, proc.log
    assert str(proc.pid).encode() not in pids  # the master serves nothing
    # 3. workers run gsse's Server with the command line's options and broker
    config = get_json(port, "/config")
    assert (config["ping"], config["broker"]) == (4.0, "memory://")
    # 4. SIGTERM: streams in the workers end cleanly, everything exits with 0
    streams = open_streams(port, "/events", 4)
    proc.send(signal.SIGTERM)
    assert_ended_cleanly(streams, timeout=15)
    assert all(b"data: bye" in stream.body for stream in streams)
    assert proc.wait(15) == 0


@pytest.mark.slow
def test_workers_second_sigint_exits_at_once(procs: Processes) -> None:
    """With workers too, a second Ctrl-C ends everything without the grace period."""
    # 1. a stream that ignores the shutdown, and a long grace period
    proc = procs.gsse(
        "run", APP, "--port", "0", "--workers", "2", "--graceful-timeout", "600"
    )
    (stream,) = open_streams(proc.wait_ready(), "/stubborn", 1)
    with stream:
        # 2. the first SIGINT starts a graceful shutdown of the workers. Wait
        # until the master has taken it: two signals that reach a process
        # before its Python handler runs are one signal (a terminal's Ctrl-C
        # reaches the workers too, whose own handlers count every one).
        proc.send(signal.SIGINT)
        proc.wait_log("Handling signal: int")
        proc.wait_log("waiting up to 600.0 s for 1 open stream")
        # 3. the second one is gunicorn's quick shutdown
        proc.send(signal.SIGINT)
        assert proc.wait() in (0, 130)  # long before the 600 s grace period
        assert "Quick shutdown requested" in proc.log


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("tests.apps.no_such_module:app", 2, "could not import module"),
        ("tests.apps.raises_on_import:app", 1, "fails on import on purpose"),
    ],
)
def test_workers_report_app_errors(
    procs: Processes, target: str, code: int, message: str
) -> None:
    """With workers, a broken target still gives its message and exit code."""
    result, out = run_to_end(procs, "run", target, "--port", "0", "--workers", "2")
    assert result == code, out
    assert message in out


@pytest.mark.slow
def test_worker_class_under_plain_gunicorn(procs: Processes) -> None:
    """``gunicorn -k gsse.workers.SSEWorker``: streams closed before gunicorn kills."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    if gunicorn is None:
        pytest.skip("the gunicorn command is not installed")
    port = free_port()
    # 1. gunicorn's own command line, gsse's worker class
    proc = procs.start(
        [gunicorn, "-k", "gsse.workers.SSEWorker", "-b", f"127.0.0.1:{port}",
         "--graceful-timeout", "3", "--no-control-socket", APP],
    )  # fmt: skip
    proc.wait_port(port)
    streams = open_streams(port, "/stubborn", 3)
    # 2. SIGTERM: the worker closes the streams after 3 - 2 = 1 s, cleanly
    proc.send(signal.SIGTERM)
    assert_ended_cleanly(streams, timeout=10)
    assert proc.wait(10) == 0
    assert "Worker exiting" in proc.log


def test_workers_without_gunicorn(procs: Processes, tmp_path: Path) -> None:
    """Without gunicorn, ``--workers`` says what to install and exits with 1."""
    shadow = tmp_path / "shadow"
    (shadow / "gunicorn").mkdir(parents=True)
    (shadow / "gunicorn" / "__init__.py").write_text(
        "raise ImportError('No module named gunicorn', name='gunicorn')\n"
    )
    env = clean_env(PYTHONPATH=str(shadow))
    proc = procs.gsse("run", APP, "--workers", "2", env=env)
    code, out = proc.run_to_end()
    assert code == 1, out
    assert "pip install 'gsse[workers]'" in out


# -- reload ------------------------------------------------------------------
RELOAD_APP = """\
from gsse import App

app = App()


@app.route("/")
def index(event):
    return {version!r}
"""


@pytest.mark.slow
def test_reload_restarts_after_a_change(procs: Processes, tmp_path: Path) -> None:
    """``--reload`` serves the new code after a file changes; SIGTERM exits 0."""
    pytest.importorskip("watchfiles")
    project = tmp_path / "project"
    project.mkdir()
    module = project / "live_app.py"
    module.write_text(RELOAD_APP.format(version="v1"))
    # 1. the supervisor starts the server in a child process
    port = free_port()
    proc = procs.gsse(
        "run", "live_app:app", "--port", str(port), "--reload", cwd=project
    )
    proc.wait_port(port)
    first = proc.wait_log(r"\[(\d+)\] INFO gsse: gsse .* serving")
    procs.extra_pids.append(int(first.group(1)))
    assert http_get(port, "/") == (200, b"v1")
    # 2. a change to the module: the server restarts with the new code
    module.write_text(RELOAD_APP.format(version="v2"))
    deadline = time.monotonic() + 60
    body = b""
    while time.monotonic() < deadline:
        try:
            body = http_get(port, "/", timeout=2)[1]
        except (OSError, StreamClosed):
            body = b""
        if body == b"v2":
            break
        time.sleep(0.1)
    assert body == b"v2", proc.log
    assert "live_app.py changed: restarting" in proc.log
    # 3. SIGTERM stops the child gracefully; the supervisor exits with 0
    proc.send(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert proc.log.count("gsse stopped") == 2


def test_reload_without_watchfiles(procs: Processes, tmp_path: Path) -> None:
    """Without watchfiles, ``--reload`` says what to install and exits with 1."""
    shadow = tmp_path / "shadow"
    (shadow / "watchfiles").mkdir(parents=True)
    (shadow / "watchfiles" / "__init__.py").write_text(
        "raise ImportError('No module named watchfiles', name='watchfiles')\n"
    )
    env = clean_env(PYTHONPATH=str(shadow))
    code, out = procs.gsse("run", APP, "--reload", env=env).run_to_end()
    assert code == 1, out
    assert "pip install 'gsse[reload]'" in out


# -- thread pool ---------------------------------------------------------------
def first_event(port: int, path: str) -> tuple[str, str]:
    with RawStream(port, path) as stream:
        (message,) = stream.events(1)
    return message.event, message.data


def test_threads_run_blocking_callbacks(procs: Processes) -> None:
    """``--threads N`` sizes the pool that runs ``blocking=True`` callbacks."""
    proc = procs.gsse("run", APP, "--port", "0", "--threads", "2")
    port = proc.wait_ready()
    assert "2 threads" in proc.log
    assert first_event(port, "/blocking") == ("thread", "True")
    assert first_event(port, "/where") == ("thread", "False")


def test_handlers_threads(procs: Processes) -> None:
    """``--handlers threads`` runs handlers in pool threads, streams on the loop."""
    proc = procs.gsse("run", APP, "--port", "0", "--handlers", "threads")
    port = proc.wait_ready()
    assert "handlers in threads" in proc.log
    assert http_get(port, "/handler-thread") == (200, b"True")
    assert first_event(port, "/where") == ("thread", "False")
    assert first_event(port, "/blocking") == ("thread", "True")


def test_gsse_command_is_installed() -> None:
    """The console script exists (the other tests rely on it)."""
    assert Path(gsse_command()[0]).exists()
