"""Shared fixtures: real gsse servers on free loopback ports.

The suite runs under ``python -m gevent.monkey --module pytest``, so the
servers and the test's own clients share one patched event loop.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
from gevent import monkey
from gevent.pywsgi import WSGIServer

from gsse import Server

if not monkey.is_module_patched("socket"):
    raise pytest.UsageError(
        "run the tests as: python -m gevent.monkey --module pytest"
        " (the servers under test need gevent's monkey-patching)"
    )

# Started in the background by a shell without job control (`bash .ci/run &`,
# nohup), the suite inherits SIGINT ignored, and so would every command it
# starts: a Python command then never gets KeyboardInterrupt, and the Ctrl-C
# tests (gsse tail) wait for ever. The commands under test get Ctrl-C as
# from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start ``Server(app, "127.0.0.1", 0, **options)``; stopped after the test."""
    servers: list[Server] = []

    def start(app: Any, **options: Any) -> Server:
        server = Server(app, "127.0.0.1", 0, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(graceful_timeout=0)


@pytest.fixture
def pywsgi() -> Iterator[Callable[..., int]]:
    """Serve a WSGI app with a plain gevent WSGIServer; returns its port."""
    servers: list[WSGIServer] = []

    def start(app: object) -> int:
        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        servers.append(server)
        return int(server.server_port)

    yield start
    for server in servers:
        server.stop(timeout=1)
