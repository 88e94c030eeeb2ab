"""One declaration of every option: the CLI, Config, run(), Server and docs agree.

``gsse.config.OPTIONS`` is the only place a name, default, flag, variable or
help is written; these tests fail as soon as something derived from it (or
still written by hand beside it, like Server's typed keywords) drifts.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gsse import App
from gsse import Server
from gsse import SSEMiddleware
from gsse import run
from gsse.cli_parser import build_parser
from gsse.cli_parser import config_from_args
from gsse.config import BY_NAME
from gsse.config import CLI_OPTIONS
from gsse.config import OPTIONS
from gsse.config import RUN_OPTIONS
from gsse.config import SERVER_OPTIONS
from gsse.config import Config
from gsse.middleware import SERVER_ONLY_OPTIONS

from .helpers import RawStream
from .helpers import http_get
from .procs import Processes
from .procs import clean_env
from .procs import processes

DOCS = Path(__file__).resolve().parent.parent / "docs"
APP = "tests.apps.cli_app:app"


def run_parser() -> argparse.ArgumentParser:
    """The ``gsse run`` subparser, built with the current environment."""
    args, _ = build_parser().parse_known_args(["run", "x:app"])
    parser = args.parser
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", "x:app", *argv])


@pytest.fixture(autouse=True)
def no_gsse_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser reads GSSE_* variables: start each test without any."""
    for name in [n for n in __import__("os").environ if n.startswith("GSSE_")]:
        monkeypatch.delenv(name)


# -- the declaration reaches every consumer ---------------------------------
def test_every_option_is_on_the_command_line_or_says_why_not() -> None:
    """Each option has a flag with its GSSE_* variable in --help, or a reason."""
    actions = {a.dest: a for a in run_parser()._actions}
    for option in OPTIONS:
        if not option.cli:
            assert option.no_cli, f"{option.name}: no flag and no reason"
            assert option.name not in actions
            continue
        action = actions[option.name]
        assert option.flag in action.option_strings
        assert action.help is not None and f"[env: {option.env}]" in action.help
        assert option.env == "GSSE_" + option.name.upper()


def test_server_signature_matches_the_declaration() -> None:
    """Server's keywords are exactly the server options, with the same defaults."""
    parameters = inspect.signature(Server).parameters
    keywords = {
        name: p.default
        for name, p in parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "app"
    }
    assert keywords == {o.name: o.default for o in SERVER_OPTIONS}
    docstring = inspect.getdoc(Server) or ""
    for option in SERVER_OPTIONS:
        assert f":param {option.name}:" in docstring, option.name


def test_run_takes_what_server_takes_plus_log_level() -> None:
    """run()'s own keywords have the declared defaults; the rest go to Server."""
    parameters = inspect.signature(run).parameters
    for name in ("host", "port", "log_level"):
        assert parameters[name].default == BY_NAME[name].default
    assert {o.name for o in RUN_OPTIONS} == {o.name for o in SERVER_OPTIONS} | {
        "log_level"
    }


def test_config_fields_are_the_cli_options() -> None:
    """Config has one field per flag, defaulting to the declared default."""
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "app"}
    assert set(fields) == {o.name for o in CLI_OPTIONS}
    config = Config(app="x:app")
    for option in CLI_OPTIONS:
        expected = list(option.default) if option.kind == "bind" else option.default
        assert getattr(config, option.name) == expected, option.name


def test_parser_defaults_give_the_default_config() -> None:
    """With no flags and no variables, the parser yields Config's defaults."""
    assert config_from_args(parse()) == Config(app="x:app")


def test_to_argv_round_trips_every_option() -> None:
    """A config with every option changed survives to_argv (the reloader's child)."""
    config = Config(
        app="x:app", host="::1", port=9001, workers=3, threads=4, thread_queue=0,
        handlers="threads", ping=2.5, send_timeout=7.0, buffer_size=1000,
        graceful_timeout=3.0, max_connections=50, max_streams_per_ip=2,
        max_header_size=2048, max_header_count=9, max_body_size=None,
        header_timeout=None, body_idle_timeout=4.0, body_timeout=None,
        retry_after=11, max_blocking_time=0.25, metrics_path="/m",
        backlog=64, log_level="debug", broker="memory://", reload=True,
        factory=True,
    )  # fmt: skip
    argv = config.to_argv()
    assert config_from_args(build_parser().parse_args(argv)) == config
    bound = Config(app="x:app", bind=["unix:/tmp/a.sock", "127.0.0.1:9"])
    args = build_parser().parse_args(bound.to_argv())
    assert "--host" not in bound.to_argv()
    assert [str(a) for a in args.bind] == bound.bind


def test_server_options_of_config_are_server_keywords() -> None:
    """Config.server_options() names only Server keywords, all of them but where."""
    options = Config(app="x:app", max_body_size=0).server_options()
    assert set(options) == {o.name for o in SERVER_OPTIONS if o.cli} - {
        "host",
        "port",
    }
    assert options["max_body_size"] is None  # 0 on the command line: no limit


def test_middleware_takes_or_refuses_every_server_option() -> None:
    """Each server option is an SSEMiddleware keyword or named as server-only."""
    keywords = set(inspect.signature(SSEMiddleware).parameters)
    for option in SERVER_OPTIONS:
        assert (option.name in keywords) != (option.name in SERVER_ONLY_OPTIONS), (
            option.name
        )
    flask_app = Flask(__name__)
    for name in SERVER_ONLY_OPTIONS:
        with pytest.raises(TypeError, match=f"{name} is an option of the gsse server"):
            SSEMiddleware(flask_app, **{name: 1})
    with pytest.raises(TypeError, match=r"'max_stream'.*did you mean 'max_streams'"):
        SSEMiddleware(flask_app, max_stream=3)


def test_docs_name_every_flag_and_variable() -> None:
    """docs/cli.md lists every flag with its variable; the reference has them too."""
    guide = (DOCS / "cli.md").read_text(encoding="utf-8")
    reference = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    rows = {  # first cell -> second cell of the options table
        line.split("|")[1]: line.split("|")[2]
        for line in guide.splitlines()
        if line.startswith("| `-")
    }
    for option in CLI_OPTIONS:
        cells = [
            env
            for flags, env in rows.items()
            if re.search(rf"`{option.flag}[ `]", flags)
        ]
        assert cells, f"docs/cli.md has no row for {option.flag}"
        assert cells[0].strip() == f"`{option.env}`", option.env
        assert option.flag in reference and str(option.env) in reference


# -- unknown options and bad values ------------------------------------------
@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ("pingg", "ping"),
        ("send_timout", "send_timeout"),
        ("max_body", "max_body_size"),
        ("thread", "threads"),
        ("spawn", None),
        ("ssl_context", None),
    ],
)
def test_unknown_options_are_a_type_error(given: str, suggested: str | None) -> None:
    """Server and run() refuse a name they do not know, suggesting the nearest."""
    for call in (
        lambda: Server(App(), port=0, **{given: 1}),
        lambda: run(App(), **{given: 1}),
    ):
        with pytest.raises(TypeError, match=f"unknown option '{given}'") as info:
            call()
        if suggested is None:
            assert "did you mean" not in str(info.value)
        else:
            assert f"did you mean '{suggested}'?" in str(info.value)


def bad_values() -> Iterator[tuple[str, Any]]:
    """For each server option, values of the wrong type or out of range."""
    for option in SERVER_OPTIONS:
        if option.kind == "port":
            yield from ((option.name, v) for v in ("80", 1.5, -1, 70000))
        elif option.kind == "int":
            yield from ((option.name, v) for v in ("3", 1.5, True, option.minimum - 1))
        elif option.kind == "seconds":
            yield from ((option.name, v) for v in ("3", True, -1))
            if option.above_zero:
                yield option.name, 0
        elif option.kind == "choice":
            yield from ((option.name, v) for v in ("fibers", 1))
        elif option.kind in ("text", "host", "socket"):
            yield option.name, 8000


@pytest.mark.parametrize(("name", "value"), list(bad_values()))
def test_bad_values_are_refused_naming_the_option(name: str, value: Any) -> None:
    """A bad value of any server option is a TypeError/ValueError naming it."""
    with pytest.raises((TypeError, ValueError), match=name) as info:
        Server(App(), **{"port": 0, name: value})
    assert repr(value) in str(info.value)


#: Flags whose value is checked (text, switches and -b have their own tests).
CHECKED = [o for o in CLI_OPTIONS if o.kind not in ("text", "switch", "bind")]


@pytest.mark.parametrize("option", CHECKED, ids=lambda o: o.name)
def test_bad_flag_and_variable_values_exit_2(
    option: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every flag and its variable refuse nonsense with a message and exit 2."""
    bad = "nonsense:80" if option.kind == "host" else "nonsense"
    with pytest.raises(SystemExit) as exit_info:
        parse(str(option.flag), bad)
    assert exit_info.value.code == 2
    assert re.search(rf"argument .*{option.flag}: .*{bad}", capsys.readouterr().err)
    monkeypatch.setenv(str(option.env), bad)
    args = parse()
    assert [e for e in args.env_errors if f"{option.env}={bad!r}" in e]


def test_zero_means_no_limit_on_the_command_line() -> None:
    """``0`` turns a size or timeout limit off (None), but is a real thread_queue."""
    args = parse(
        "--max-body-size", "0", "--header-timeout", "0", "--body-timeout", "0",
        "--body-idle-timeout", "0", "--max-blocking-time", "0", "--thread-queue", "0",
    )  # fmt: skip
    config = config_from_args(args)
    assert config.max_body_size is None and config.header_timeout is None
    assert config.body_timeout is None and config.body_idle_timeout is None
    assert config.max_blocking_time is None and config.thread_queue == 0


# -- the new flags reach a real server ---------------------------------------
@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start processes; each is stopped by PID after the test."""
    with processes(tmp_path) as manager:
        yield manager


@pytest.mark.timeout(60)
def test_new_flags_and_variables_reach_the_server(procs: Processes) -> None:
    """Flags and GSSE_* variables of the limits set what the server enforces."""
    env = clean_env(
        GSSE_MAX_HEADER_COUNT="5", GSSE_BODY_TIMEOUT="0", GSSE_BUFFER_SIZE="4096"
    )
    proc = procs.gsse(
        "run", APP, "--port", "0", "--retry-after", "7", "--max-streams-per-ip", "1",
        "--thread-queue", "3", "--header-timeout", "20", "--max-header-size", "4000",
        "--max-blocking-time", "2", "--backlog", "16", env=env,
    )  # fmt: skip
    port = proc.wait_ready()
    status, body = http_get(port, "/config")
    assert status == 200
    config = json.loads(body)
    assert config["limits"]["max_header_count"] == 5
    assert config["limits"]["max_header_size"] == 4000
    assert config["limits"]["header_timeout"] == 20.0
    assert config["limits"]["body_timeout"] is None
    assert config["limits"]["retry_after"] == 7
    assert (config["thread_queue"], config["buffer_size"]) == (3, 4096)
    assert config["watchdog"] is True
    many = {f"X-Header-{i}": "1" for i in range(8)} | {"Connection": "close"}
    with RawStream(port, "/", headers=many) as refused:
        assert refused.status == 431
    with RawStream(port, "/events") as first:
        first.read_until(b"data:")
        with RawStream(port, "/events", headers={"Connection": "close"}) as second:
            assert second.status == 429
            assert second.headers["retry-after"] == "7"
    assert re.search(r"serving tests\.apps\.cli_app:app", proc.log)


def test_middleware_takes_the_pool_queue_and_buffer_size() -> None:
    """thread_queue and buffer_size, once fixed, are SSEMiddleware options too."""
    middleware = SSEMiddleware(
        Flask(__name__), threads=2, thread_queue=0, buffer_size=4096
    )
    assert (middleware.pool.size, middleware.pool.max_queue) == (2, 0)
    assert middleware.settings.buffer_size == 4096
    with pytest.raises(ValueError, match="thread_queue must be an int"):
        SSEMiddleware(Flask(__name__), thread_queue=-1)


@pytest.mark.timeout(60)
def test_metrics_path_without_the_extra_says_what_to_install(
    procs: Processes, tmp_path: Path
) -> None:
    """--metrics-path without prometheus_client: one line naming the extra, exit 1."""
    shadow = tmp_path / "shadow"
    (shadow / "prometheus_client").mkdir(parents=True)
    (shadow / "prometheus_client" / "__init__.py").write_text(
        "raise ImportError('No module named prometheus_client',"
        " name='prometheus_client')\n"
    )
    env = clean_env(PYTHONPATH=str(shadow))
    proc = procs.gsse("run", APP, "--port", "0", "--metrics-path", "/m", env=env)
    code, out = proc.run_to_end()
    assert code == 1, out
    assert "pip install 'gsse[metrics]'" in out
    assert "Traceback" not in out


@pytest.mark.timeout(60)
def test_metrics_path_flag_serves_metrics(procs: Processes) -> None:
    """``GSSE_METRICS_PATH`` mounts the Prometheus metrics before the app."""
    env = clean_env(GSSE_METRICS_PATH="/metrics")
    port = procs.gsse("run", APP, "--port", "0", env=env).wait_ready()
    status, body = http_get(port, "/metrics")
    assert status == 200
    assert b"gsse_" in body
