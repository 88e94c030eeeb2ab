"""The app the ``gsse run`` tests serve; each route reports something to check."""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from typing import Any

from gevent.monkey import get_original

from gsse import App
from gsse import Event
from gsse import SSEWriter

app = App()

# The real thread ids: patched threading.get_ident() gives greenlet ids.
_thread_ident = get_original("_thread", "get_ident")
_MAIN_THREAD = _thread_ident()  # modules are imported in the main thread


@app.route("/")
def index(event: Event) -> str:
    return "ok"


@app.route("/gc")
def garbage_collector(event: Event) -> dict[str, Any]:
    """How the process's garbage collector is set (``--gc``)."""
    return {"thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}


@app.route("/pid")
def pid(event: Event) -> str:
    """Which worker process answered."""
    return str(os.getpid())


@app.route("/config")
def config(event: Event) -> dict[str, Any]:
    """What the command line handed the app and the server."""
    view = event.request.environ["gsse.host"]  # the request's HostView
    settings = view.settings
    server = view.host.owner  # the gsse.Server that made the host
    return {
        "broker": os.environ.get("GSSE_BROKER"),
        "ping": settings.ping,
        "send_timeout": settings.send_timeout,
        "graceful_timeout": server.graceful_timeout,
        "max_connections": server.limits.max_connections,
        "max_streams_per_ip": server.limits.max_streams_per_ip,
        "limits": dataclasses.asdict(server.limits),
        "thread_queue": server.pool.max_queue,
        "buffer_size": settings.buffer_size,
        "watchdog": server.watchdog is not None,
        "cwd": os.getcwd(),
    }


def polite(writer: SSEWriter) -> None:
    """Ticks until the server shuts down, then says goodbye and ends."""
    with writer:
        i = 0
        while not writer.shutting_down:
            writer.send_event(data=f"tick {i}", event="tick")
            i += 1
            time.sleep(0.2)
        writer.send_event(data="bye", event="bye")


def stubborn(writer: SSEWriter) -> None:
    """Ignores the shutdown; the server has to close it after the grace period."""
    i = 0
    while True:
        writer.send_event(data=f"tick {i}", event="tick")
        i += 1
        time.sleep(0.2)


def in_thread(writer: SSEWriter) -> None:
    """Reports whether it runs in a pool thread rather than the main thread."""
    with writer:
        writer.send_event(data=str(_thread_ident() != _MAIN_THREAD), event="thread")


@app.route("/events")
def events(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(polite)


@app.route("/stubborn")
def stubborn_events(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(stubborn)


@app.route("/blocking")
def blocking_events(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(in_thread, blocking=True)


@app.route("/where")
def where_events(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(in_thread)


@app.route("/handler-thread")
def handler_thread(event: Event) -> str:
    """Whether this plain handler runs in a pool thread (--handlers threads)."""
    return str(_thread_ident() != _MAIN_THREAD)


def create_app() -> App:
    """A factory, for --factory."""
    return app


def create_broken_app() -> App:
    """A factory that fails."""
    raise RuntimeError("the factory failed on purpose")


def make_app() -> App:
    """A factory used without --factory: gsse suggests the flag."""
    return app


not_an_app = 42
