"""Every option declared once, and the config of ``gsse run``.

:data:`OPTIONS` is the one declaration of every setting (name, default,
flag, ``GSSE_*`` variable, help; see :mod:`gsse.options`): the ``gsse run``
parser, :class:`Config`, :func:`gsse.run` and :class:`gsse.Server` are
derived from it, and ``tests/test_options.py`` checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from .binding import DEFAULT_PORT
from .binding import Address
from .binding import check_distinct
from .binding import check_host
from .binding import parse_bind
from .gctune import GC_MODES
from .limits import DEFAULT_BODY_IDLE_TIMEOUT
from .limits import DEFAULT_BODY_TIMEOUT
from .limits import DEFAULT_HEADER_TIMEOUT
from .limits import DEFAULT_MAX_BODY_SIZE
from .limits import DEFAULT_MAX_HEADER_COUNT
from .limits import DEFAULT_MAX_HEADER_SIZE
from .limits import DEFAULT_RETRY_AFTER
from .options import Option
from .pool import DEFAULT_THREADS
from .pool import QUEUE_PER_THREAD
from .settings import DEFAULT_BUFFER_SIZE
from .settings import DEFAULT_PING
from .settings import DEFAULT_SEND_TIMEOUT

#: How ``--handlers`` may run ordinary (non-stream) request handlers.
HANDLER_MODES = ("greenlets", "threads")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
DEFAULT_HANDLERS = HANDLER_MODES[0]
DEFAULT_LOG_LEVEL = "info"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_GRACEFUL_TIMEOUT = 10.0
#: Default grace period of ``--reload``: a save should restart at once, even
#: with a page open whose stream ignores ``writer.shutting_down``.
RELOAD_GRACEFUL_TIMEOUT = 1.0
#: Connections the kernel queues before gsse accepts them (gunicorn's and
#: uvicorn's default). gevent's own, 128, drops the SYNs of a reconnect
#: storm, and each dropped client waits a second to retry.
DEFAULT_BACKLOG = 2048

_BINDS = "the host (gunicorn, pywsgi) binds the socket"
_PARSED = "headers are parsed before any app runs"
_READ = "the server reads the request before the app runs"

#: Every option of ``gsse run``, :func:`gsse.run` and :class:`gsse.Server`,
#: in ``--help`` order. The one place a name, default, flag or help is written.
OPTIONS: tuple[Option, ...] = (
    Option("host", DEFAULT_HOST, "address to listen on; 0.0.0.0 for every IPv4"
           f" interface, :: for IPv6 (default: {DEFAULT_HOST})", kind="host",
           not_in_middleware=_BINDS),
    Option("port", DEFAULT_PORT, "port to listen on; 0 picks a free one"
           f" (default: {DEFAULT_PORT})", kind="port", not_in_middleware=_BINDS),
    Option("bind", (), "listen on HOST:PORT, [IPv6]:PORT or unix:PATH (a Unix"
           " socket) instead of --host/--port; repeat to listen on several"
           " addresses, which share one set of streams and limits. Several"
           " addresses, space- or comma-separated, in the environment",
           kind="bind", scope="cli", short="-b", metavar="ADDRESS"),
    Option("listener", None, "an already bound socket to serve on", kind="socket",
           nullable=True, cli=False, no_cli="a socket object; gsse run binds"
           " with --host/--port or -b", not_in_middleware=_BINDS),
    Option("workers", 1, "number of processes serving the same port, managed by"
           " gunicorn's arbiter (needs gsse[workers]). Each process has its own"
           " streams and memory:// broker: workers share channels only through"
           " --broker redis://... (default: 1, no gunicorn)", scope="cli",
           short="-w", metavar="N"),
    Option("threads", None, "size of each process's thread pool, which runs"
           " blocking=True stream callbacks (and handlers, with --handlers"
           " threads); more work waits for a free thread"
           f" (default: {DEFAULT_THREADS})", nullable=True, metavar="N"),
    Option("thread_queue", None, "work that may wait for a pool thread before"
           " new work gets 503 with Retry-After; 0: never wait"
           f" (default: {QUEUE_PER_THREAD} per thread)", minimum=0, nullable=True,
           metavar="N"),
    Option("handlers", DEFAULT_HANDLERS, "run ordinary request handlers as"
           " greenlets (cheap; code must cooperate with gevent) or in threads of"
           " the pool (for handlers that block without yielding: C drivers, CPU"
           " work); streams stay on the event loop either way"
           f" (default: {DEFAULT_HANDLERS})", kind="choice", choices=HANDLER_MODES,
           metavar="{greenlets,threads}",
           not_in_middleware="request handlers run wherever the host runs them"),
    Option("ping", None, "send a keep-alive comment on a stream idle this long;"
           f" 0 turns it off (default: {DEFAULT_PING:g})", kind="seconds",
           nullable=True, metavar="SECONDS"),
    Option("send_timeout", None, "close a stream whose client has read nothing"
           " this long; it can resume by reconnecting"
           f" (default: {DEFAULT_SEND_TIMEOUT:g})", kind="seconds", nullable=True,
           metavar="SECONDS"),
    Option("buffer_size", None, "bytes a stream may hold unsent before its"
           " writer waits for the client (default:"
           f" {DEFAULT_BUFFER_SIZE})", nullable=True, metavar="BYTES"),
    Option("graceful_timeout", DEFAULT_GRACEFUL_TIMEOUT, "on SIGTERM or Ctrl-C,"
           " how long open streams get to finish before they are closed"
           f" (default: {DEFAULT_GRACEFUL_TIMEOUT:g};"
           f" {RELOAD_GRACEFUL_TIMEOUT:g} with --reload, so that a save restarts"
           " at once)", kind="seconds", metavar="SECONDS", cli_unset=True),
    Option("max_connections", None, "open connections per process, streams"
           " included, before new requests get 503 with Retry-After (default: no"
           " limit)", nullable=True, metavar="N",
           not_in_middleware="it counts connections, which only the server sees"),
    Option("max_streams_per_ip", None, "open streams per client address before"
           " new ones get 429 with Retry-After; behind a proxy every client has"
           " the proxy's address (default: no limit)", nullable=True, metavar="N"),
    Option("max_header_size", DEFAULT_MAX_HEADER_SIZE, "bytes of request header"
           " lines before 431 Request Header Fields Too Large"
           f" (default: {DEFAULT_MAX_HEADER_SIZE})", metavar="BYTES",
           not_in_middleware=_PARSED),
    Option("max_header_count", DEFAULT_MAX_HEADER_COUNT, "request header lines"
           f" before 431 (default: {DEFAULT_MAX_HEADER_COUNT})", metavar="N",
           not_in_middleware=_PARSED),
    Option("max_body_size", DEFAULT_MAX_BODY_SIZE, "request body bytes before"
           " 413 Content Too Large; 0: no limit"
           f" (default: {DEFAULT_MAX_BODY_SIZE}, 10 MiB)", nullable=True,
           zero_is_none=True, minimum=0, metavar="BYTES", not_in_middleware=_READ),
    Option("header_timeout", DEFAULT_HEADER_TIMEOUT, "seconds a client gets to"
           " send its request line and headers, and an idle keep-alive"
           " connection its next request, before 408; 0: no limit"
           f" (default: {DEFAULT_HEADER_TIMEOUT:g})", kind="seconds",
           nullable=True, above_zero=True, zero_is_none=True, metavar="SECONDS",
           not_in_middleware=_READ),
    Option("body_idle_timeout", DEFAULT_BODY_IDLE_TIMEOUT, "seconds a request"
           " body may pause between two pieces before 408; 0: no limit"
           f" (default: {DEFAULT_BODY_IDLE_TIMEOUT:g})", kind="seconds",
           nullable=True, above_zero=True, zero_is_none=True, metavar="SECONDS",
           not_in_middleware=_READ),
    Option("body_timeout", DEFAULT_BODY_TIMEOUT, "seconds the app may wait in"
           " all for a request body before 408; 0: no limit"
           f" (default: {DEFAULT_BODY_TIMEOUT:g})", kind="seconds", nullable=True,
           above_zero=True, zero_is_none=True, metavar="SECONDS",
           not_in_middleware=_READ),
    Option("retry_after", DEFAULT_RETRY_AFTER, "the Retry-After seconds of 503"
           f" and 429 refusals (default: {DEFAULT_RETRY_AFTER})",
           metavar="SECONDS"),
    Option("max_blocking_time", None, "log, with its stack, and count every time"
           " the event loop is blocked longer than this; 0: off (default: off)",
           kind="seconds", nullable=True, above_zero=True, zero_is_none=True,
           metavar="SECONDS", not_in_middleware="it watches the server's event loop"),
    Option("metrics_path", None, "serve Prometheus metrics on this path, e.g."
           " /metrics (needs gsse[metrics]); anyone who can reach it can read"
           " them (default: off)", kind="text", nullable=True, metavar="PATH",
           not_in_middleware="mount gsse.metrics.metrics_app() in your app instead"),
    Option("backlog", DEFAULT_BACKLOG, "connections the kernel queues before"
           " they are accepted, capped by net.core.somaxconn"
           f" (default: {DEFAULT_BACKLOG})", metavar="N", not_in_middleware=_BINDS),
    Option("log_level", DEFAULT_LOG_LEVEL, "least severe log messages to show; info"
           f" includes the access log (default: {DEFAULT_LOG_LEVEL})", kind="choice",
           choices=LOG_LEVELS, scope="run", metavar="{" + ",".join(LOG_LEVELS) + "}"),
    Option("broker", None, "channel broker for gsse.Broker.from_url(), e.g."
           " redis://localhost:6379/0; sets GSSE_BROKER for the app and every"
           " worker (default: memory://, one process only)", kind="text",
           nullable=True, scope="cli", metavar="URL"),
    Option("gc", "tuned", "Python's garbage collector: tuned freezes the objects"
           " that exist once the app is loaded and makes full collections rare"
           " (they pause every stream, about 13 ms per 1,000 open streams);"
           " python keeps Python's defaults (default: tuned)", kind="choice",
           choices=GC_MODES, scope="cli", metavar="{" + ",".join(GC_MODES) + "}"),
    Option("reload", False, "restart when a .py file under the current directory"
           " changes; for development (needs gsse[reload])", kind="switch",
           scope="cli"),
    Option("factory", False, "MODULE:APP names a function that takes no arguments"
           " and returns the app", kind="switch", scope="cli"),
)  # fmt: skip

#: The options by name.
BY_NAME = {option.name: option for option in OPTIONS}
#: The options of :class:`gsse.Server` (and of :func:`gsse.run`).
SERVER_OPTIONS = tuple(o for o in OPTIONS if o.scope == "server")
#: The keyword options of :func:`gsse.run`: the server's and ``log_level``.
RUN_OPTIONS = tuple(o for o in OPTIONS if o.scope in ("server", "run"))
#: The options of ``gsse run``.
CLI_OPTIONS = tuple(o for o in OPTIONS if o.cli)


def server_only_options() -> dict[str, str]:
    """Options of the server that SSEMiddleware cannot take, and why."""
    return {o.name: o.not_in_middleware for o in SERVER_OPTIONS if o.not_in_middleware}


@dataclass
class Config:
    """What ``gsse run`` was asked for; the fields are :data:`CLI_OPTIONS`.

    A field holds the value :class:`gsse.Server` takes (``None`` for "no
    limit"), not the flag's text.

    .. versionadded:: 0.1
    """

    app: str
    host: str = BY_NAME["host"].default
    port: int = BY_NAME["port"].default
    #: ``-b`` addresses (``HOST:PORT``, ``unix:PATH``); they replace host/port.
    bind: list[str] = field(default_factory=list)
    workers: int = BY_NAME["workers"].default
    threads: int | None = BY_NAME["threads"].default
    thread_queue: int | None = BY_NAME["thread_queue"].default
    handlers: str = BY_NAME["handlers"].default
    ping: float | None = BY_NAME["ping"].default
    send_timeout: float | None = BY_NAME["send_timeout"].default
    buffer_size: int | None = BY_NAME["buffer_size"].default
    graceful_timeout: float = BY_NAME["graceful_timeout"].default
    max_connections: int | None = BY_NAME["max_connections"].default
    max_streams_per_ip: int | None = BY_NAME["max_streams_per_ip"].default
    max_header_size: int = BY_NAME["max_header_size"].default
    max_header_count: int = BY_NAME["max_header_count"].default
    #: Request body bytes before 413; ``None`` (or ``0``): no limit.
    max_body_size: int | None = BY_NAME["max_body_size"].default
    header_timeout: float | None = BY_NAME["header_timeout"].default
    body_idle_timeout: float | None = BY_NAME["body_idle_timeout"].default
    body_timeout: float | None = BY_NAME["body_timeout"].default
    retry_after: int = BY_NAME["retry_after"].default
    max_blocking_time: float | None = BY_NAME["max_blocking_time"].default
    metrics_path: str | None = BY_NAME["metrics_path"].default
    backlog: int = BY_NAME["backlog"].default
    log_level: str = BY_NAME["log_level"].default
    broker: str | None = BY_NAME["broker"].default
    gc: str = BY_NAME["gc"].default
    reload: bool = BY_NAME["reload"].default
    factory: bool = BY_NAME["factory"].default

    def addresses(self) -> list[Address]:
        """Where to listen: the ``bind`` addresses, or ``host`` and ``port``.

        :raises ValueError: an address or host that cannot be used.
        """
        if self.bind:
            addresses = [parse_bind(text) for text in self.bind]
            check_distinct(addresses)
            return addresses
        return [Address(check_host(self.host), self.port)]

    def server_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`gsse.Server`, but where it listens."""
        options = {}
        for option in SERVER_OPTIONS:
            if option.cli and option.name not in ("host", "port"):
                value = getattr(self, option.name)
                options[option.name] = (
                    None if option.zero_is_none and value == 0 else value
                )
        return options

    def to_argv(self) -> list[str]:
        """The ``gsse`` arguments that ask for this config (for a child process)."""
        argv = ["run", self.app]
        for option in CLI_OPTIONS:
            value = getattr(self, option.name)
            flag = str(option.flag)
            if option.name in ("host", "port") and self.bind:
                continue
            if option.kind == "bind":
                for address in value:
                    argv += [flag, address]
            elif option.kind == "switch":
                argv += [flag] if value else []
            else:
                text = option.to_text(value)
                if text is not None:
                    argv += [flag, text]
        return argv
