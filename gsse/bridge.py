"""Hands work from real OS threads to the gevent loop, safely.

A thread must never touch gevent objects of the loop's thread directly; it
posts a callback with ``loop.run_callback_threadsafe`` (an async watcher
wakes the loop) and waits on a real, unpatched lock for the answer. The loop
runs the callback without blocking: writes are non-blocking, and a thread
that must wait for a full buffer to drain waits in its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import gevent
from gevent.monkey import get_original

from .exceptions import ClientDisconnected
from .transport import Transport

T = TypeVar("T")

_allocate_lock = get_original("_thread", "allocate_lock")
_real_sleep = get_original("time", "sleep")

#: How often a thread re-checks a full buffer while it waits to send.
DRAIN_POLL = 0.005


def call_in_loop(hub: Any, func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in the loop's thread; return or raise its result."""
    if hub is None:
        raise RuntimeError(
            "this writer belongs to an event loop in another thread and cannot"
            " be used from here; use set_stream_callback(cb, blocking=True)"
        )
    done = _allocate_lock()
    done.acquire()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, func(*args)))
        except BaseException as exc:  # handed back to the calling thread
            outcome.append((False, exc))
        finally:
            done.release()

    hub.loop.run_callback_threadsafe(run)
    done.acquire()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def write_from_thread(transport: Transport, payload: bytes, hub: Any) -> None:
    """Write ``payload`` from a pool thread, waiting here while it is full."""
    call_in_loop(hub, transport.write, payload)
    while transport.full_since and not transport.closed:
        waited = time.monotonic() - transport.full_since
        if transport.send_timeout and waited > transport.send_timeout:
            call_in_loop(hub, transport.tick, time.monotonic())
            break
        _real_sleep(DRAIN_POLL)
    if transport.closed and transport.full_since:
        raise ClientDisconnected(f"stream closed: {transport.close_reason}")


#: The environ key of the thread pool that runs ``blocking=True`` callbacks.
THREADPOOL_KEY = "gsse.threadpool"


def run_blocking(environ: Any, func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` in a real OS thread of the host's thread pool."""
    pool = (environ or {}).get(THREADPOOL_KEY) or gevent.get_hub().threadpool
    pool.spawn(func, *args)
