"""The gsse server's access line for a stream: written when it ends, truthfully.

pywsgi would log a stream when its headers are out (``200 191 0.001``); the
line now comes when the stream ends, with the bytes really sent, the
seconds it lasted and why it ended, as gunicorn logs a stream's real length.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable

import gevent
import pytest
from gevent.event import Event as GeventEvent

from gsse import Server
from gsse import SSEWriter
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import stream_app
from tests.helpers import wait_until

Serve = Callable[..., Server]
LINE = re.compile(r'"GET /events HTTP/1\.1" 200 (\d+) (\d+\.\d+) \((.+)\)$')


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gsse.access"]


def stream_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    return [m for line in access_lines(caplog) if (m := LINE.search(line))]


def read_all(port: int, timeout: float = 10.0) -> bytes:
    """Every byte the server sends for GET /events, until it closes."""
    received = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if received.endswith(b"0\r\n\r\n"):
                break
    return received


def test_a_stream_is_logged_when_it_ends_with_its_real_length(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The line comes after the stream ends and counts every byte sent."""
    release = GeventEvent()

    def three_events(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("one")
            release.wait(10)
            writer.send_event("two" * 100)
            writer.send_event("three")

    caplog.set_level(logging.INFO, logger="gsse.access")
    server = serve(stream_app(three_events))
    reader = gevent.spawn(read_all, server.port)
    gevent.sleep(0.3)  # the headers and "one" are out by now
    assert stream_lines(caplog) == []  # open: nothing logged yet
    release.set()
    received = reader.get(timeout=10)
    assert received.endswith(b"0\r\n\r\n")
    assert wait_until(lambda: len(stream_lines(caplog)) == 1)
    (line,) = stream_lines(caplog)
    assert int(line.group(1)) == len(received)
    assert line.group(3) == "closed by the server"


def test_a_stream_the_client_leaves_is_logged_with_that_reason(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up gets a line saying so, once."""

    def forever(writer: SSEWriter) -> None:
        writer.send_event("hello")
        while not writer.closed:
            time.sleep(0.01)

    caplog.set_level(logging.INFO, logger="gsse.access")
    server = serve(stream_app(forever))
    with RawStream(server.port) as stream:
        stream.events(1)
        assert stream_lines(caplog) == []
    assert wait_until(lambda: len(stream_lines(caplog)) == 1)
    (line,) = stream_lines(caplog)
    assert line.group(3) == "the client went away"
    assert int(line.group(1)) > len(b"data: hello\n\n")


def test_ordinary_requests_are_logged_as_before(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A page's line is pywsgi's own, written when it is answered."""
    caplog.set_level(logging.INFO, logger="gsse.access")
    server = serve(stream_app(lambda writer: writer.close()))
    status, _ = http_get(server.port, "/")
    assert status == 200
    (line,) = access_lines(caplog)
    assert re.search(r'"GET / HTTP/1\.1" 200 \d+ \d+\.\d+$', line)
