"""Stream callbacks: what may be one, and how one runs without hurting others.

Mistakes are refused where the callback is given (an ``async def`` would
only make a coroutine nothing awaits) or told when it runs (a send after
the callback's own ``close()``, a writer dropped while its stream is open),
never swallowed.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from types import CodeType
from types import FunctionType
from typing import Any

from .exceptions import ClientDisconnected
from .exceptions import CloseReason
from .writer import SSEWriter
from .writer import end_stream
from .writer import stats_of

logger = logging.getLogger("gsse.stream")

StreamCallback = Callable[[SSEWriter], Any]


def describe(callback: object) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


def returned_lazy(result: object) -> bool:
    """Whether a plain call's result only runs when awaited or iterated.

    A callable that passed :func:`check_plain` may still hide an async
    function or a generator (behind a lambda or a decorator); its result
    tells. A coroutine or generator is closed, so no "never awaited"
    warning follows the caller's own error.
    """
    lazy = (
        inspect.isawaitable(result)
        or inspect.isgenerator(result)
        or inspect.isasyncgen(result)
    )
    if inspect.iscoroutine(result) or inspect.isgenerator(result):
        result.close()
    return lazy


def _is_async(func: object) -> bool:
    """Whether calling ``func`` only makes a coroutine or async generator."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return True
    if inspect.isroutine(func) or isinstance(func, type):
        return False
    # The class's __call__ (how a call resolves), not the instance's.
    call = getattr(type(func), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def check_plain(func: object, what: str, consequence: str) -> None:
    """Refuse an async callable where gsse will call ``func`` without awaiting.

    :param consequence: what would happen if it were accepted.
    :raises TypeError: saying to write a plain ``def`` instead.
    """
    if _is_async(func):
        raise TypeError(
            f"{what} {describe(func)!r} is async (async def), but gsse calls it"
            f" as a plain function, so {consequence}. Write it as a plain def:"
            " blocking calls (time.sleep, requests, database drivers) are"
            " cooperative under gevent"
        )


#: Code objects of plain functions that passed :func:`check_callback`: what
#: it looks at is in the code's flags, and a callback made per request (a
#: closure, a lambda) shares its code with the others from the same place.
_PASSED: set[CodeType] = set()
#: Code objects made at run time (``exec``) could grow the set for ever.
_MAX_PASSED = 4096


def check_callback(callback: object, what: str = "the stream callback") -> None:
    """Refuse what cannot run as a stream callback, saying what to write instead.

    An ``async def`` callback would only make a coroutine that nothing awaits:
    the client would get the headers and then nothing, forever.
    """
    # A plain function with nothing set on it (Python 3.12's
    # markcoroutinefunction sets an attribute) is decided by its code.
    plain = type(callback) is FunctionType and not callback.__dict__
    if plain and callback.__code__ in _PASSED:  # type: ignore[attr-defined]
        return
    if not callable(callback):
        raise TypeError(f"{what} must be callable, got {callback!r}")
    check_plain(
        callback,
        what,
        "nothing would ever await it and its client would wait forever",
    )
    func: Any = callback
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.isgeneratorfunction(func):
        raise TypeError(
            f"{what} {describe(callback)!r} is a generator function (it"
            " yields), but gsse calls it once and never iterates it, so it"
            " would send nothing. Send each event with writer.send_event(...)"
            " instead of yield"
        )
    if plain and len(_PASSED) < _MAX_PASSED:
        _PASSED.add(callback.__code__)  # type: ignore[attr-defined]


def run_callback(callback: StreamCallback, writer: SSEWriter) -> None:
    """Run a stream callback so that nothing it does can hurt other streams.

    Mistakes are told, not swallowed: a callback that sends after closing
    its own stream, or drops its writer with the stream still open, gets a
    warning naming it (see :meth:`SSEWriter.watch`).
    """
    writer.watch(describe(callback))
    try:
        result = callback(writer)
        if returned_lazy(result):
            _returned_lazy(callback, writer, result)
    except ClientDisconnected as exc:
        if writer.closed_here:
            context = writer.log_context
            logger.warning(
                "stream %s %s: callback %s sent after it closed the stream"
                " with writer.close(); nothing was sent: %s",
                context["stream_id"],
                context["path"],
                describe(callback),
                exc,
                extra=context,
            )
        else:
            logger.debug("stream callback %s ended: %s", describe(callback), exc)
    except Exception as exc:
        stats_of(writer).callback_errors += 1
        context = writer.log_context
        logger.exception(
            "stream %s %s: callback %s raised; its stream was closed",
            context["stream_id"],
            context["path"],
            describe(callback),
            extra=context,
        )
        end_stream(writer, CloseReason.CALLBACK_FAILED, type(exc).__name__)
    except BaseException as exc:
        # Killed (GreenletExit) or interrupted: the stream cannot go on.
        end_stream(writer, CloseReason.CALLBACK_FAILED, type(exc).__name__)
        raise


def _returned_lazy(callback: StreamCallback, writer: SSEWriter, result: Any) -> None:
    """Say that a callback returned what only runs when awaited or iterated.

    It hid an async function or a generator (behind a lambda or a
    decorator) from the checks made when it was given.
    """
    stats_of(writer).callback_errors += 1
    context = writer.log_context
    logger.error(
        "stream %s %s: callback %s returned %s, which nothing awaits or"
        " iterates, and sent nothing; its stream was closed. A stream callback"
        " is a plain def that sends with writer.send_event()",
        context["stream_id"],
        context["path"],
        describe(callback),
        type(result).__name__,
        extra=context,
    )
    end_stream(
        writer, CloseReason.CALLBACK_FAILED, f"it returned {type(result).__name__}"
    )
