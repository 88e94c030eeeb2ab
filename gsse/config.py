"""Config for ``gsse run``, and finding the app named by ``module:app``.

``load_app`` tells two kinds of failure apart, because users fix them
differently: :class:`~gsse.exceptions.AppImportError` means the target
could not be found (wrong module or attribute name, not a WSGI callable;
``gsse run`` exits with 2), while any other exception comes from the user's
own module or factory and is left untouched, traceback and all (exit 1).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from .binding import Address
from .binding import check_distinct
from .binding import check_host
from .binding import parse_bind
from .exceptions import AppImportError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: How ``--handlers`` may run ordinary (non-stream) request handlers.
HANDLER_MODES = ("greenlets", "threads")


@dataclass
class Config:
    """What ``gsse run`` was asked for; field names match the flags.

    .. versionadded:: 0.1
    """

    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int | None = None
    handlers: str | None = None
    ping: float | None = None
    send_timeout: float | None = None
    graceful_timeout: float = 10.0
    max_connections: int | None = None
    max_streams_per_ip: int | None = None
    #: Request body bytes before 413; ``0``: no limit; ``None``: the default.
    max_body_size: int | None = None
    log_level: str = "info"
    broker: str | None = None
    reload: bool = False
    factory: bool = False
    #: ``-b`` addresses (``HOST:PORT``, ``unix:PATH``); they replace host/port.
    bind: list[str] = field(default_factory=list)

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
        """Keyword arguments for :class:`gsse.Server`; unset ones are left out."""
        options: dict[str, Any] = {"graceful_timeout": self.graceful_timeout}
        for name in (
            "ping",
            "send_timeout",
            "threads",
            "handlers",
            "max_connections",
            "max_streams_per_ip",
        ):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        if self.max_body_size is not None:
            options["max_body_size"] = self.max_body_size or None
        return options

    def to_argv(self) -> list[str]:
        """The ``gsse`` arguments that ask for this config (for a child process)."""
        argv = ["run", self.app]
        if self.bind:
            for address in self.bind:
                argv += ["--bind", address]
        else:
            argv += ["--host", self.host, "--port", str(self.port)]
        argv += ["--workers", str(self.workers)]
        argv += ["--graceful-timeout", repr(self.graceful_timeout)]
        argv += ["--log-level", self.log_level]
        for flag, value in (
            ("--threads", self.threads),
            ("--handlers", self.handlers),
            ("--ping", self.ping),
            ("--send-timeout", self.send_timeout),
            ("--max-connections", self.max_connections),
            ("--max-streams-per-ip", self.max_streams_per_ip),
            ("--max-body-size", self.max_body_size),
            ("--broker", self.broker),
        ):
            if value is not None:
                argv += [flag, str(value)]
        if self.reload:
            argv.append("--reload")
        if self.factory:
            argv.append("--factory")
        return argv


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: "an int", "a str"."""
    return ("an " if noun[:1].lower() in ("a", "e", "i", "o", "u") else "a ") + noun


def _takes_no_arguments(func: Any) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def load_app(target: str, factory: bool = False) -> WSGIApplication:
    """Import ``module:name`` (``name`` defaults to ``app``) and return the app.

    The working directory comes first on ``sys.path``, as with gunicorn and
    uvicorn. With ``factory``, ``name`` is called with no arguments and must
    return the app.

    :raises AppImportError: the app cannot be found; the message says what
        to fix.
    :raises Exception: whatever importing the module (or calling the
        factory) raised, unchanged.

    .. versionadded:: 0.1
    """
    module_name, _, attr = target.partition(":")
    attr = attr or "app"
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        dotted = module_name.removesuffix(".py").replace("/", ".").replace("\\", ".")
        raise AppImportError(
            f"cannot understand {target!r}: name a module, not a file, for"
            f" example '{dotted.strip('.')}:{attr}'"
        )
    if not module_name or not attr.replace(".", "").replace("_", "").isalnum():
        raise AppImportError(
            f"cannot understand {target!r}: use 'module:name', for example"
            " 'myproject.web:app'"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a miss of the target itself (or a parent package) is the
        # user's typo; a module the app imports is the app's own error.
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppImportError(
                f"could not import module {module_name!r} (looked in {cwd} and"
                " sys.path); check the name, or run gsse from the directory that"
                " contains it"
            ) from None
        raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(
                f"module {module_name!r} has no attribute {attr!r}; use"
                f" 'module:name' to name the app object, e.g. '{module_name}:app'"
            ) from None
    if factory:
        if not callable(obj):
            raise AppImportError(
                f"--factory: {target!r} is {_a(type(obj).__name__)}, not a function"
                " that returns the app"
            )
        obj = obj()
    elif inspect.isfunction(obj) and _takes_no_arguments(obj):
        raise AppImportError(
            f"{target!r} is a function that takes no arguments, not a WSGI"
            " application; if it builds and returns the app, pass --factory"
        )
    if not callable(obj):
        raise AppImportError(
            f"{target!r} is {_a(type(obj).__name__)}, not a WSGI application;"
            " name a gsse.App, a Flask app or another WSGI callable"
            + ("" if factory else " (or pass --factory if it builds one)")
        )
    return obj  # type: ignore[no-any-return]
