"""Load the user's app and say where it is served.

:func:`load_app` tells two kinds of failure apart, because users fix them
differently: :class:`~gsse.exceptions.AppImportError` means the target
could not be found (wrong module or attribute name, not a WSGI callable;
``gsse run`` exits with 2), while any other exception comes from the user's
own module or factory and is left untouched, traceback and all (exit 1).

Shared by ``gsse run`` (:mod:`gsse.cli_run`) and its gunicorn workers
(:mod:`gsse.workers`), which import the app in each worker process.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from ._version import __version__
from .config import DEFAULT_HANDLERS
from .config import Config
from .exceptions import AppImportError
from .usage import error

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger("gsse")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def display_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def startup_line(config: Config, url: str) -> str:
    """The one line that says where the app is served and how."""
    workers = f"{config.workers} worker" + ("s" if config.workers != 1 else "")
    broker = os.environ.get("GSSE_BROKER") or "memory://"
    details = [workers, f"broker {display_url(broker)}"]
    if config.threads is not None:
        details.append(f"{config.threads} threads")
    if config.handlers != DEFAULT_HANDLERS:
        details.append(f"handlers in {config.handlers}")
    return (
        f"gsse {__version__} serving {config.app} on {url}"
        f" ({', '.join(details)}); press Ctrl-C to stop"
    )


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


def _is_ours(filename: str) -> bool:
    """Frames of gsse or importlib, which say nothing about the user's error."""
    if filename.startswith("<frozen importlib"):
        return True
    path = os.path.abspath(filename)
    return any(
        path.startswith(os.path.dirname(module.__file__ or "") + os.sep)
        for module in (sys.modules[__package__ or "gsse"], importlib)
    )


def user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without the frames of gsse and importlib."""
    summary = traceback.TracebackException.from_exception(exc)
    frames = [frame for frame in summary.stack if not _is_ours(frame.filename)]
    summary.stack = traceback.StackSummary.from_list(frames)
    return "".join(summary.format())


def import_app(config: Config) -> WSGIApplication | int:
    """Load the app, or report why not and return the exit code."""
    try:
        return load_app(config.app, factory=config.factory)
    except AppImportError as exc:
        error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        print(user_traceback(exc), end="", file=sys.stderr)
        doing = "calling the factory" if config.factory else "importing"
        error(
            f"{doing} {config.app!r} failed with {type(exc).__name__}: {exc}"
            " (traceback above)"
        )
        return EXIT_ERROR
