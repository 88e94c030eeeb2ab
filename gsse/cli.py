"""``gsse run module:app``: serve a WSGI app with streaming, like gunicorn.

Every flag can also come from an environment variable of the same name
(``--send-timeout`` <-> ``GSSE_SEND_TIMEOUT``); a flag on the command line
wins. The command picks one of three ways to run:

- one process (the default): patch the standard library for gevent, import
  the app, serve with :class:`gsse.Server`;
- ``--workers N``: gunicorn's arbiter forks N processes that share the
  listening socket (:mod:`gsse.workers`); the master itself is never
  patched, as gunicorn requires;
- ``--reload``: a small supervisor (:mod:`gsse.reloader`) runs the command
  without ``--reload`` in a child and restarts it when a file changes.

Exit codes follow the usual conventions: 0 after a graceful shutdown, 2 for
bad usage or an app that cannot be found, 1 for an app that fails while
importing and for errors at run time.

The code is in layers: :mod:`gsse.cli_parser` declares the options,
:mod:`gsse.cli_run` runs ``gsse run``, :mod:`gsse.launch` loads the app
(for ``gsse run`` and its gunicorn workers alike) and :mod:`gsse.tail` is
``gsse tail``; this module only dispatches.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from .cli_parser import build_parser
from .cli_parser import config_from_args
from .cli_run import configure_logging
from .cli_run import run
from .server import EXIT_INTERRUPTED
from .usage import HABITS
from .usage import binds_from_args

logger = logging.getLogger("gsse")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``gsse`` command."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "tail":
        from .tail import tail

        if unknown:
            args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        sys.exit(tail(args))
    if unknown:
        # Report it as the subcommand's error, with its usage line.
        flags = [arg.partition("=")[0] for arg in unknown]
        hints = [HABITS[flag] for flag in flags if flag in HABITS]
        args.parser.error(
            f"unrecognized arguments: {' '.join(unknown)}"
            + (f" ({'; '.join(hints)})" if hints else " (see gsse run --help)")
        )
    if args.env_errors:
        args.parser.error("; ".join(args.env_errors))
    argv = sys.argv[1:] if argv is None else argv
    bind = binds_from_args(args, argv)
    if isinstance(bind, str):
        args.parser.error(bind)
        return
    config = config_from_args(args, bind)
    configure_logging(config.log_level)
    logger.debug("%r", config)
    try:
        code = run(config)
    except KeyboardInterrupt:
        # Ctrl-C before the server was up (e.g. while importing the app).
        code = EXIT_INTERRUPTED
    sys.exit(code)
