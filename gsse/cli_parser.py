"""The ``gsse`` argument parser: every option, its type and its GSSE_* variable.

Each option type raises ``ArgumentTypeError`` saying what to fix. A bad
environment variable is reported after parsing (see :func:`gsse.cli.main`),
so that ``--help`` still works.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from ._version import __version__
from .binding import Address
from .config import HANDLER_MODES
from .config import Config
from .tail import add_parser as add_tail_parser
from .usage import bind_type
from .usage import host_type

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

ENV_PREFIX = "GSSE_"

#: Default grace period of ``--reload``: a save should restart at once, even
#: with a page open whose stream ignores ``writer.shutting_down``.
RELOAD_GRACEFUL_TIMEOUT = 1.0

DESCRIPTION = """\
Serve a WSGI app (a gsse.App, a Flask app, any WSGI callable) with gevent.
Streams run as greenlets on one event loop per process, so stream callbacks
stay plain blocking Python code.
"""

EPILOG = """\
environment:
  Every option can also be set with an environment variable of the same name
  in upper case with a GSSE_ prefix, e.g. GSSE_PORT=9000, GSSE_LOG_LEVEL=debug,
  GSSE_RELOAD=1. Options on the command line win over the environment.

signals:
  SIGTERM or Ctrl-C (SIGINT) shut down gracefully: the server stops accepting,
  stream callbacks see writer.shutting_down become True, streams still open
  after --graceful-timeout are ended cleanly (never reset), and the process
  exits with 0. A second Ctrl-C exits at once (code 130).

exit codes:
  0 stopped gracefully, 1 the app failed to import or the server failed,
  2 bad usage or the app could not be found.

examples:
  gsse run myproject.web:app
  gsse run myproject.web:create_app --factory --port 9000
  gsse run myproject.web:app -w 4 --broker redis://localhost:6379/0
  gsse run myproject.web:app -b 0.0.0.0:8000 -b unix:/run/gsse.sock
  gsse run myproject.web:app --reload --log-level debug
"""


# -- option types: each raises ArgumentTypeError with what to fix ----------
def _int_at_least(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    convert.__name__ = "number"
    return convert


def _port(text: str) -> int:
    value = _int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {text!r}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text!r}")
    return value


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = text.lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(
                f"choose from {', '.join(choices)}; got {text!r}"
            )
        return value

    convert.__name__ = "choice"
    return convert


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, yes/no; got {text!r}")


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class _Options:
    """Adds options whose default comes from ``GSSE_*`` environment variables.

    A bad variable is reported after parsing (see :func:`main`), so that
    ``--help`` still works and the usage line is complete.
    """

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.errors: list[str] = []
        parser.set_defaults(env_errors=self.errors)

    def _from_env(self, flag: str, convert: Callable[[str], Any], default: Any) -> Any:
        name = _env_name(flag)
        text = os.environ.get(name)
        if text is None:
            return default
        try:
            return convert(text)
        except argparse.ArgumentTypeError as exc:
            self.errors.append(f"environment variable {name}={text!r}: {exc}")
            return default

    def value(
        self,
        flag: str,
        convert: Callable[[str], Any],
        default: Any,
        help: str,
        metavar: str | None = None,
        short: str | None = None,
    ) -> None:
        self.parser.add_argument(
            *((short,) if short else ()),
            flag,
            type=convert,
            default=self._from_env(flag, convert, default),
            metavar=metavar,
            help=f"{help} [env: {_env_name(flag)}]",
        )

    def switch(self, flag: str, help: str) -> None:
        self.parser.add_argument(
            flag,
            action="store_true",
            default=self._from_env(flag, _flag, False),
            help=f"{help} [env: {_env_name(flag)}]",
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``gsse`` argument parser (``gsse run --help`` documents every option)."""
    parser = argparse.ArgumentParser(
        prog="gsse",
        description="Serve Server-Sent Events from plain blocking Python code.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"gsse {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser(
        "run",
        help="serve a WSGI app (gsse.App, Flask, any WSGI callable)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument(
        "app",
        metavar="MODULE:APP",
        help="the app to serve: a module path, a colon and the name of the app"
        " in it, e.g. myproject.web:app (':app' may be left out). The current"
        " directory is on the import path.",
    )
    run.add_argument("--version", action="version", version=f"gsse {__version__}")
    run.set_defaults(parser=run)
    options = _Options(run)
    options.value(
        "--host",
        host_type,
        "127.0.0.1",
        "address to listen on; 0.0.0.0 for every IPv4 interface, :: for IPv6"
        " (default: 127.0.0.1)",
    )
    options.value(
        "--port",
        _port,
        8000,
        "port to listen on; 0 picks a free one (default: 8000)",
    )
    run.add_argument(
        "-b",
        "--bind",
        type=bind_type,
        action="append",
        default=None,
        metavar="ADDRESS",
        help="listen on HOST:PORT, [IPv6]:PORT or unix:PATH (a Unix socket)"
        " instead of --host/--port; repeat to listen on several addresses,"
        " which share one set of streams and limits. Several addresses, space-"
        " or comma-separated, in the environment [env: GSSE_BIND]",
    )
    options.value(
        "--workers",
        _int_at_least(1),
        1,
        "number of processes serving the same port, managed by gunicorn's"
        " arbiter (needs gsse[workers]). Each process has its own streams and"
        " memory:// broker: workers share channels only through"
        " --broker redis://... (default: 1, no gunicorn)",
        metavar="N",
        short="-w",
    )
    options.value(
        "--threads",
        _int_at_least(1),
        None,
        "size of each process's thread pool, which runs blocking=True stream"
        " callbacks (and handlers, with --handlers threads); more work waits"
        " for a free thread (default: 10)",
        metavar="N",
    )
    options.value(
        "--handlers",
        _choice(HANDLER_MODES),
        None,
        "run ordinary request handlers as greenlets (cheap; code must"
        " cooperate with gevent) or in threads of the pool (for handlers that"
        " block without yielding: C drivers, CPU work); streams stay on the"
        " event loop either way (default: greenlets)",
        metavar="{greenlets,threads}",
    )
    options.value(
        "--ping",
        _seconds,
        None,
        "send a keep-alive comment on a stream idle this long; 0 turns it off"
        " (default: 15)",
        metavar="SECONDS",
    )
    options.value(
        "--send-timeout",
        _seconds,
        None,
        "close a stream whose client has read nothing this long; it can resume"
        " by reconnecting (default: 30)",
        metavar="SECONDS",
    )
    options.value(
        "--graceful-timeout",
        _seconds,
        None,
        "on SIGTERM or Ctrl-C, how long open streams get to finish before they"
        f" are closed (default: 10; {RELOAD_GRACEFUL_TIMEOUT:g} with --reload, so"
        " that a save restarts at once)",
        metavar="SECONDS",
    )
    options.value(
        "--max-connections",
        _int_at_least(1),
        None,
        "open connections per process, streams included, before new requests"
        " get 503 with Retry-After (default: no limit)",
        metavar="N",
    )
    options.value(
        "--max-streams-per-ip",
        _int_at_least(1),
        None,
        "open streams per client address before new ones get 429 with"
        " Retry-After; behind a proxy every client has the proxy's address"
        " (default: no limit)",
        metavar="N",
    )
    options.value(
        "--max-body-size",
        _int_at_least(0),
        None,
        "request body bytes before 413 Content Too Large; 0: no limit"
        " (default: 10485760, 10 MiB)",
        metavar="BYTES",
    )
    options.value(
        "--log-level",
        _choice(LOG_LEVELS),
        "info",
        "least severe log messages to show; info includes the access log"
        " (default: info)",
        metavar="{" + ",".join(LOG_LEVELS) + "}",
    )
    options.value(
        "--broker",
        str,
        None,
        "channel broker for gsse.Broker.from_url(), e.g. redis://localhost:6379/0;"
        " sets GSSE_BROKER for the app and every worker (default: memory://,"
        " one process only)",
        metavar="URL",
    )
    options.switch(
        "--reload",
        "restart when a .py file under the current directory changes; for"
        " development (needs gsse[reload])",
    )
    options.switch(
        "--factory",
        "MODULE:APP names a function that takes no arguments and returns the app",
    )
    add_tail_parser(commands)
    return parser


def config_from_args(args: argparse.Namespace, bind: Sequence[Address] = ()) -> Config:
    """The :class:`Config` for parsed ``gsse run`` arguments."""
    graceful_timeout = args.graceful_timeout
    if graceful_timeout is None:
        graceful_timeout = RELOAD_GRACEFUL_TIMEOUT if args.reload else 10.0
    return Config(
        app=args.app,
        host=args.host,
        port=args.port,
        bind=[str(address) for address in bind],
        workers=args.workers,
        threads=args.threads,
        handlers=args.handlers,
        ping=args.ping,
        send_timeout=args.send_timeout,
        graceful_timeout=graceful_timeout,
        max_connections=args.max_connections,
        max_streams_per_ip=args.max_streams_per_ip,
        max_body_size=args.max_body_size,
        log_level=args.log_level,
        broker=args.broker,
        reload=args.reload,
        factory=args.factory,
    )
