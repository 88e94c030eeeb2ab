"""An app whose stream callbacks block the event loop for good, for ``gsse run``.

Importing it starts a :class:`gsse.watchdog.Watchdog` (``gsse run`` has no
flag for one) on the loop the server will use. Each route blocks the loop in
another way; the client sees ``blocking`` just before it starts.
"""

from __future__ import annotations

import _socket

import gevent
from gevent.monkey import get_original

from gsse import App
from gsse import Event
from gsse import SSEWriter
from gsse.watchdog import Watchdog

app = App()
watchdog = Watchdog(0.2)
watchdog.start()

_real_sleep = get_original("time", "sleep")


def announce(writer: SSEWriter) -> None:
    """Send ``blocking`` and let the loop flush it (it goes out on a yield)."""
    writer.send_event("blocking")
    gevent.sleep(0.1)


def spin_forever(writer: SSEWriter) -> None:
    """A pure-Python busy loop: never yields, never returns."""
    announce(writer)
    while True:
        pass


def sleep_unpatched(writer: SSEWriter) -> None:
    """``time.sleep`` from before monkey-patching: blocks in C."""
    announce(writer)
    while True:
        _real_sleep(3600)


def read_unpatched_socket(writer: SSEWriter) -> None:
    """A blocking read on a real socket nobody writes to (a C driver's wait)."""
    # _socket's sockets are never patched (socket.socketpair returns gevent's).
    left, right = _socket.socketpair()
    announce(writer)
    while True:
        left.recv(1)


CALLBACKS = {
    "spin": spin_forever,
    "sleep": sleep_unpatched,
    "socket": read_unpatched_socket,
}


@app.route("/")
def index(event: Event) -> str:
    return "ok"


@app.route("/block/<kind>")
def block(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(CALLBACKS[event.path_params["kind"]])
