"""Connection floods, half-open sockets and garbage leave the server as it was."""

from __future__ import annotations

import gc
import os
import random
import socket
import time
from collections.abc import Callable

import gevent
import pytest

from gsse import Server
from gsse import SSEWriter
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.reliability.support import baseline
from tests.reliability.support import live_greenlets
from tests.reliability.support import open_fds
from tests.reliability.support import rss_kib
from tests.reliability.support import stream_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(90)


def greet(writer: SSEWriter) -> None:
    writer.send_event("hi")


def settled(server: Server, fds: int, greenlets: int) -> bool:
    """Back at the baseline: no streams, no extra sockets or greenlets."""
    if len(server.registry) or server.wsgi.limiter.open_connections:
        return False
    return open_fds() <= fds + 2 and live_greenlets() <= greenlets + 2


def test_a_thousand_connect_close_cycles(serve: Serve) -> None:
    """1000 rapid connect/close cycles (half with a stream) leak nothing."""
    server = serve(stream_app(greet))
    assert http_get(server.port) == (200, b"ok")
    fds, greenlets = baseline()
    rss = rss_kib()
    for i in range(1000):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        if i % 4 == 1:
            # Some close with a reset instead of a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        sock.close()
        if i % 50 == 0:
            gevent.sleep(0)
    assert wait_until(lambda: settled(server, fds, greenlets), timeout=20)
    assert http_get(server.port) == (200, b"ok")
    # Generous: the point is "no growth per connection" (1000 would show).
    assert rss_kib() - rss < 20_000


def test_half_open_connections_time_out_and_leave_nothing(serve: Serve) -> None:
    """Clients that connect (and maybe send half a request) then vanish are reaped."""
    server = serve(stream_app(greet), header_timeout=0.5)
    fds, greenlets = baseline()
    socks = []
    for i in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: ")
        socks.append(sock)
    try:
        # They hold connections for a while, yet a normal request passes.
        assert http_get(server.port) == (200, b"ok")
        assert wait_until(
            lambda: server.wsgi.limiter.open_connections == 0, timeout=10
        ), server.wsgi.limiter.open_connections
    finally:
        for sock in socks:
            sock.close()
    assert wait_until(lambda: settled(server, fds, greenlets), timeout=10)


def test_garbage_and_byte_by_byte_requests(serve: Serve) -> None:
    """Random bytes get 400 or a close; a request sent byte by byte still works."""
    server = serve(stream_app(greet), header_timeout=2.0)
    fds, greenlets = baseline()
    rng = random.Random(1234)
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            junk = os.urandom(rng.randint(1, 2000))
            if rng.random() < 0.5:
                junk += b"\r\n\r\n"
            try:
                sock.sendall(junk)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(5)
                answer = sock.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for byte in b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n":
            sock.sendall(bytes([byte]))
            time.sleep(0.002)
        sock.settimeout(60)  # generous: the test is about what arrives
        got = b""
        deadline = time.monotonic() + 60
        while b"data: hi" not in got and time.monotonic() < deadline:
            got += sock.recv(4096)
        assert got.startswith(b"HTTP/1.1 200")
        assert b"data: hi" in got
    with RawStream(server.port) as stream:
        stream.read_until(b"hi")
    assert wait_until(lambda: settled(server, fds, greenlets), timeout=10)


def test_a_stream_outlives_the_garbage_collection_of_its_request(
    serve: Serve,
) -> None:
    """Collecting the request's objects never closes the socket under a stream.

    Regression: gevent closed the connection's socket when the request's
    file objects were collected, pulling the fd from under a stream whose
    callback had returned (libev then aborted the process).
    """
    writers: list[SSEWriter] = []

    def keep(writer: SSEWriter) -> None:
        writer.send_event("first")
        writers.append(writer)

    server = serve(stream_app(keep))
    with RawStream(server.port) as stream:
        stream.read_until(b"first")
        for _ in range(3):
            gc.collect()
            gevent.sleep(0.05)
        assert not writers[0].closed
        writers[0].send_event("second")
        stream.read_until(b"second")
        writers[0].close()
        stream.read_to_end()
        assert stream.ended and not stream.cut
