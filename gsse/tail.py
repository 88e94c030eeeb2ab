"""``gsse tail URL``: print a live event stream in the terminal.

For debugging any SSE endpoint, gsse or not. Output is one block per event:
a header line (the event type, then ``id=`` and ``retry=`` when set) and the
data lines indented by two spaces, so multi-line data stays readable; with
``--json`` it is one JSON object per line for ``jq`` and scripts.

Ctrl-C (and a closed pipe, as in ``gsse tail URL | head``) exit 0 without a
traceback; a stream that cannot go on prints one ``Error:`` line and exits 1.
Like a browser it keeps reconnecting after dropped connections, saying so on
stderr in one short line each time (``--max-retries`` bounds the attempts);
a URL that cannot be reached at all on the first try is an error at once.
The command runs without gevent: a plain blocking client in a thread of its
own, so that Ctrl-C never interrupts ``requests`` half-way (see :func:`tail`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import threading
from typing import TYPE_CHECKING
from typing import Any
from typing import TextIO

from .usage import error
from .wire import Message

if TYPE_CHECKING:
    from .client import EventSource

EXIT_OK = 0
EXIT_ERROR = 1

DESCRIPTION = """\
Print the events of a text/event-stream URL as they arrive, reconnecting as a
browser would (after the server's retry: time, sending Last-Event-ID).
Works with any SSE server, not only gsse.
"""

EPILOG = """\
output:
  Each event is a header line (the event type, id=... and retry=... when set)
  followed by its data, each line indented by two spaces. With --json, each
  event is one JSON object per line: {"event", "data", "id", "retry"}.

exit codes:
  0 the server ended the stream (HTTP 204) or Ctrl-C, 1 the URL is not an
  event stream (a status other than 200, another Content-Type), the first
  connection failed, or --max-retries reconnections failed in a row,
  2 bad usage.

examples:
  gsse tail http://127.0.0.1:8000/events
  gsse tail https://example.com/stream --header 'Authorization: Bearer TOKEN'
  gsse tail http://127.0.0.1:8000/events --last-event-id 41 --json | jq .data
  gsse tail http://127.0.0.1:8000/events --max-retries 5
"""


def header(text: str) -> tuple[str, str]:
    """``"Name: value"`` (or ``Name:value``) as a pair; for ``--header``."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(
            f"expected NAME:VALUE, e.g. 'Authorization: Bearer TOKEN'; got {text!r}"
        )
    return name.strip(), value.strip()


def retries(text: str) -> int:
    """A whole number >= 0; for ``--max-retries``."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def reason(exc: BaseException) -> str:
    """A short, one-line reason for a network error, for people.

    ``requests`` wraps the socket's error in two or three layers whose text
    repeats the URL and object addresses; the innermost ``OSError`` (e.g.
    "Connection refused") says it all.
    """
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.strerror:
            return str(item.strerror)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__]
        todo += list(item.args)
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    text = lines[0]
    return text if len(text) <= 200 else text[:197] + "..."


class _OneLine(logging.Filter):
    """Shortens the client's "URL: <error>; reconnecting" notices to one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                reason(arg) if isinstance(arg, BaseException) else arg
                for arg in record.args
            )
        return True


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gsse tail`` on the ``gsse`` command's subparsers."""
    tail = commands.add_parser(
        "tail",
        help="print the events of an SSE URL as they arrive (any server)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    tail.add_argument("url", metavar="URL", help="the stream's http:// or https:// URL")
    tail.add_argument(
        "--last-event-id",
        metavar="ID",
        default=None,
        help="resume after this event ID (sent as the Last-Event-ID header)",
    )
    tail.add_argument(
        "--header",
        metavar="NAME:VALUE",
        type=header,
        action="append",
        default=[],
        help="send this request header; repeat for more",
    )
    tail.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per event and line",
    )
    tail.add_argument(
        "--max-retries",
        metavar="N",
        type=retries,
        default=None,
        help="after the first connection, give up (exit 1) once N reconnection"
        " attempts in a row have failed (default: keep trying, as a browser"
        " does)",
    )
    tail.set_defaults(parser=tail, env_errors=[])


def format_message(message: Message) -> str:
    """The readable block for one event (no trailing newline)."""
    head = message.event
    if message.id:
        head += f" id={message.id}"
    if message.retry is not None:
        head += f" retry={message.retry}"
    body = "\n".join(f"  {line}" for line in message.data.split("\n"))
    return f"{head}\n{body}"


def format_json(message: Message) -> str:
    """One event as a one-line JSON object."""
    return json.dumps(
        {
            "event": message.event,
            "data": message.data,
            "id": message.id,
            "retry": message.retry,
        },
        ensure_ascii=False,
    )


class _Notices(logging.Handler):
    """Hand the client's log lines to the main thread, which prints them."""

    def __init__(self, inbox: queue.SimpleQueue[tuple[str, Any]]) -> None:
        super().__init__()
        self.inbox = inbox
        self.setFormatter(logging.Formatter("gsse tail: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.inbox.put(("notice", self.format(record)))


def _read(source: EventSource, inbox: queue.SimpleQueue[tuple[str, Any]]) -> None:
    """The reader thread: every message, then how the stream ended."""
    try:
        for message in source:
            inbox.put(("message", message))
    except BaseException as exc:  # the main thread reports or re-raises it
        inbox.put(("error", exc))
    else:
        inbox.put(("end", None))


def tail(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``gsse tail`` with parsed ``args``; return the exit code.

    Ctrl-C exits 0 in every phase (connecting, reading, waiting to
    reconnect): the network runs in a daemon thread and only this one takes
    the KeyboardInterrupt. Raised inside ``requests``/``urllib3`` instead, it
    can land between a lock's acquire and its ``with`` block (CPython
    gh-74174), and urllib3's cleanup then waits on that lock for ever.
    """
    try:
        return _tail(args, out if out is not None else sys.stdout)
    except KeyboardInterrupt:  # before the reader started, or a second Ctrl-C
        return EXIT_OK


def _tail(args: argparse.Namespace, out: TextIO) -> int:
    from .client import EventSource
    from .client import EventSourceError

    render = format_json if args.json else format_message
    connected: list[bool] = []
    try:
        source = EventSource(
            args.url,
            last_event_id=args.last_event_id,
            headers=dict(args.header),
            # No retries until a first response: an unreachable URL is an
            # error, not something to wait for.
            max_retries=0,
        )
    except (ValueError, TypeError) as exc:
        error(str(exc))
        return EXIT_ERROR
    source.session.hooks["response"].append(
        lambda response, *_, **__: _connected(source, args, connected)
    )
    inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    # Reconnections are news to someone debugging a stream: show them.
    notices = _Notices(inbox)
    notices.addFilter(_OneLine())
    client_log = logging.getLogger("gsse.client")
    client_log.addHandler(notices)
    client_log.setLevel(logging.INFO)
    reader = threading.Thread(
        target=_read, args=(source, inbox), name="gsse-tail", daemon=True
    )
    try:
        reader.start()
        while True:
            kind, value = inbox.get()
            if kind == "message":
                print(render(value), file=out, flush=True)
            elif kind == "notice":
                print(value, file=sys.stderr, flush=True)
            elif kind == "error":
                raise value
            else:
                return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The reader went away (``| head``): point stdout at /dev/null so
        # the interpreter's last flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except EventSourceError as exc:
        error(_failure(args, exc, bool(connected)))
        return EXIT_ERROR
    except (ValueError, TypeError) as exc:
        error(str(exc))
        return EXIT_ERROR
    finally:
        client_log.removeHandler(notices)
        # Wakes a read or a reconnection wait at once. A connect or a wait for
        # response headers goes on in the daemon thread, which exiting ends.
        source.close()


def _connected(source: Any, args: argparse.Namespace, connected: list[bool]) -> None:
    """The first response arrived: from now on, retry as the user asked."""
    if not connected:
        connected.append(True)
        source.max_retries = args.max_retries


def _failure(args: argparse.Namespace, exc: BaseException, connected: bool) -> str:
    """The ``Error:`` line for a stream that cannot go on."""
    cause = exc.__cause__
    if cause is None:
        return str(exc)  # a bad response: its own message says it all
    if not connected:
        return f"cannot connect to {args.url}: {reason(cause)}"
    return (
        f"gave up on {args.url} after {args.max_retries} failed reconnection"
        f" attempt(s) in a row: {reason(cause)}"
    )
