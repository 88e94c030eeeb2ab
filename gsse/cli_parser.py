"""The ``gsse`` argument parser, generated from :data:`gsse.config.OPTIONS`.

Each option's flag, type, default, ``GSSE_*`` variable and help come from
its declaration; a bad value is an ``ArgumentTypeError`` saying what to fix. A bad
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
from .config import CLI_OPTIONS
from .config import DEFAULT_GRACEFUL_TIMEOUT
from .config import LOG_LEVELS as LOG_LEVELS
from .config import RELOAD_GRACEFUL_TIMEOUT as RELOAD_GRACEFUL_TIMEOUT
from .config import Config
from .options import ENV_PREFIX as ENV_PREFIX
from .options import Option
from .tail import add_parser as add_tail_parser
from .usage import bind_type

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


def _type(option: Option) -> Callable[[str], Any]:
    """``option.parse`` as an argparse type: its message becomes the error."""
    if option.kind == "bind":
        return bind_type

    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.kind
    return convert


class _Options:
    """Adds options whose default comes from ``GSSE_*`` environment variables.

    A bad variable is reported after parsing (see :func:`main`), so that
    ``--help`` still works and the usage line is complete.
    """

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.errors: list[str] = []
        parser.set_defaults(env_errors=self.errors)

    def _from_env(self, option: Option) -> Any:
        default = None if option.cli_unset else option.default
        name = str(option.env)
        text = os.environ.get(name)
        if text is None or option.kind == "bind":
            return default  # GSSE_BIND: see usage.binds_from_args
        try:
            return option.parse(text)
        except ValueError as exc:
            self.errors.append(f"environment variable {name}={text!r}: {exc}")
            return default

    def add(self, option: Option) -> None:
        """The flag of ``option``, with its type, default and variable."""
        flags = (*((option.short,) if option.short else ()), str(option.flag))
        help = f"{option.help} [env: {option.env}]"
        if option.kind == "switch":
            self.parser.add_argument(
                *flags, action="store_true", default=self._from_env(option), help=help
            )
        elif option.kind == "bind":
            self.parser.add_argument(
                *flags,
                type=bind_type,
                action="append",
                default=None,
                metavar=option.metavar,
                help=help,
            )
        else:
            self.parser.add_argument(
                *flags,
                type=_type(option),
                default=self._from_env(option),
                metavar=option.metavar,
                help=help,
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
    for option in CLI_OPTIONS:
        options.add(option)
    add_tail_parser(commands)
    return parser


def config_from_args(args: argparse.Namespace, bind: Sequence[Address] = ()) -> Config:
    """The :class:`Config` for parsed ``gsse run`` arguments."""
    values = {option.name: getattr(args, option.name) for option in CLI_OPTIONS}
    if values["graceful_timeout"] is None:
        values["graceful_timeout"] = (
            RELOAD_GRACEFUL_TIMEOUT if args.reload else DEFAULT_GRACEFUL_TIMEOUT
        )
    values["bind"] = [str(address) for address in bind]
    return Config(app=args.app, **values)
