"""Load the user's app and say where it is served.

Shared by ``gsse run`` (:mod:`gsse.cli_run`) and its gunicorn workers
(:mod:`gsse.workers`), which import the app in each worker process.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from ._version import __version__
from .config import BY_NAME
from .config import Config
from .config import load_app
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
    if config.handlers != BY_NAME["handlers"].default:
        details.append(f"handlers in {config.handlers}")
    return (
        f"gsse {__version__} serving {config.app} on {url}"
        f" ({', '.join(details)}); press Ctrl-C to stop"
    )


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
