"""What ``gsse run`` tells a user who typed something it cannot use.

Kept apart from :mod:`gsse.cli` (which parses and dispatches) because each
message here is written for a particular mistake: a ``--host`` that holds
a port, a gunicorn or uvicorn flag typed from habit, an address that cannot
be listened on, an extra that is not installed. :func:`error` is how every
command (``gsse run``, ``gsse tail``, the reloader) shows such a message.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Sequence

from .binding import Address
from .binding import check_distinct
from .binding import parse_bind


def error(message: str) -> None:
    """One clear line on stderr, for the user (not a log record)."""
    print(f"Error: {message}", file=sys.stderr, flush=True)


def bind_type(text: str) -> Address:
    """``-b``: ``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` or ``unix:PATH``."""
    try:
        return parse_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def binds_type(text: str) -> list[Address]:
    """``GSSE_BIND``: addresses separated by spaces or commas."""
    return [bind_type(part) for part in text.replace(",", " ").split()]


#: Flags of gunicorn, uvicorn or flask run that gsse has no equivalent for,
#: with what to use instead (told instead of a bare "unrecognized").
HABITS = {
    "-t": "gsse has no worker timeout (streams are long-lived); see --send-timeout"
    " and --graceful-timeout",
    "--timeout": "gsse has no worker timeout (streams are long-lived); see"
    " --send-timeout and --graceful-timeout",
    "-k": "gsse always runs its own gevent worker; leave -k out",
    "--worker-class": "gsse always runs its own gevent worker; leave it out",
    "-p": "for the port use --port (gunicorn's -p is a pid file, flask's a port)",
    "--uds": "for a Unix socket use -b unix:PATH",
}


def _on_command_line(argv: Sequence[str], *flags: str) -> bool:
    return any(
        arg in flags or arg.startswith(tuple(f"{flag}=" for flag in flags))
        for arg in argv
    )


def binds_from_args(
    args: argparse.Namespace, argv: Sequence[str]
) -> list[Address] | str:
    """The ``-b`` addresses asked for, or a usage error to report.

    ``-b`` replaces ``--host``/``--port``; giving both on the command line
    is a mistake. ``GSSE_BIND`` counts only when the command line names no
    address at all (flags win over the environment).
    """
    if args.bind:
        if _on_command_line(argv, "--host", "--port"):
            return "give the addresses with -b/--bind or --host/--port, not both"
        try:
            check_distinct(args.bind)
        except ValueError as exc:
            return f"-b/--bind: {exc}"
        return list(args.bind)
    text = os.environ.get("GSSE_BIND", "").strip()
    if not text or _on_command_line(argv, "--host", "--port"):
        return []
    try:
        addresses = binds_type(text)
        check_distinct(addresses)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        return f"environment variable GSSE_BIND={text!r}: {exc}"
    return addresses


def server_address(exc: OSError, addresses: list[Address]) -> Address:
    """The address an ``OSError`` from :class:`ListeningServer` is about."""
    failed = getattr(exc, "gsse_address", None)
    if isinstance(failed, Address):
        return failed
    return addresses[0] if addresses else Address()


def listen_error(address: Address, exc: OSError) -> str:
    """Why ``address`` cannot be listened on, and what to try."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        hint = f"the host name {address.host!r} does not resolve; check it"
    elif exc.errno == errno.EADDRINUSE:
        hint = (
            "is another server using it? try another port"
            if not address.is_unix
            else "a server listens there, or a file that is no socket is in"
            " the way; choose another path"
        )
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = "this machine has no such address; try 127.0.0.1 or 0.0.0.0"
    elif exc.errno == errno.EACCES:
        hint = (
            "ports below 1024 need privileges; try a port above 1024"
            if not address.is_unix
            else "no permission to create the socket there"
        )
    else:
        hint = "check the address"
    return f"cannot listen on {address}: {reason} ({hint})"


def missing_for(option: str, extra: str, exc: Exception) -> str:
    """What to install when ``option`` cannot import what it needs.

    Names the module that is really missing (``exc.name``): gunicorn may be
    there while a module its gevent worker imports is not.
    """
    install = f"pip install 'gsse[{extra}]'"
    missing = getattr(exc, "name", None)
    if not missing:
        return f"{option} cannot start: {exc} ({install} installs what it needs)"
    return (
        f"{option} needs the Python module {missing!r}, which is not installed:"
        f" {install} ({exc})"
    )
