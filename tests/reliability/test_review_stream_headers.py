"""A stream's own headers never frame the response, and repeated names all go out.

Checked through every public API that sets a stream's headers
(``Event.start_sse``, :func:`gsse.stream`, ``Broker.stream``) over real
sockets: ``Content-Length: 0`` would make a keep-alive client or proxy read
the events as the next response, and a second ``Set-Cookie`` was dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from gsse import App
from gsse import Broker
from gsse import Event
from gsse import Server
from gsse import SSEMiddleware
from gsse import SSEWriter
from gsse import stream
from tests.reliability.support import raw_request

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

FRAMING = [
    ("Content-Length", "0"),
    ("content-length", "12"),
    ("Transfer-Encoding", "chunked"),
    ("Transfer-Encoding", "identity"),
    ("Connection", "keep-alive"),
    ("CONNECTION", "close"),
    ("Keep-Alive", "timeout=5"),
    ("Upgrade", "websocket"),
    ("Trailer", "X-Checksum"),
    ("TE", "trailers"),
    ("Proxy-Connection", "keep-alive"),
]
COOKIES = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]


def say_hi(writer: SSEWriter) -> None:
    writer.send_event("hi")
    writer.close()


def servers(serve: Serve, headers: Any) -> dict[str, int]:
    """One server per public API, each answering /e with ``headers``."""
    app = App()

    @app.route("/e")
    def events(event: Event) -> None:
        event.start_sse(headers=headers)
        event.set_stream_callback(say_hi)

    broker = Broker.from_url("memory://")
    broker.publish("c", "hi")
    flask = Flask(__name__)

    @flask.route("/e")
    def flask_events() -> Any:
        return stream(say_hi, headers=headers)

    flask_broker = Flask(__name__ + "broker")

    @flask_broker.route("/e")
    def broker_events() -> Any:
        return broker.stream("c", headers=headers)

    return {
        "start_sse": serve(app).port,
        "gsse.stream": serve(SSEMiddleware(flask)).port,
        "Broker.stream": serve(SSEMiddleware(flask_broker)).port,
    }


def get(port: int) -> bytes:
    request = (
        b"GET /e HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0-0\r\nConnection: close\r\n\r\n"
    )
    return raw_request(port, request, timeout=3.0)


@pytest.mark.parametrize(
    ("name", "value"), FRAMING, ids=[n + ":" + v for n, v in FRAMING]
)
def test_framing_headers_are_refused_by_every_stream_api(
    serve: Serve, name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream setting a framing or hop-by-hop header is refused, not sent."""
    with caplog.at_level(logging.ERROR):
        for api, port in servers(serve, {name: value}).items():
            response = get(port)
            head = response.split(b"\r\n\r\n", 1)[0]
            assert head.startswith(b"HTTP/1.1 500 "), (api, head)
            assert b"text/event-stream" not in head, api
    assert f"may not set the header {name!r}" in caplog.text


def test_a_header_given_twice_is_sent_twice(serve: Serve) -> None:
    """Two Set-Cookie pairs both reach the client, from every stream API."""
    for api, port in servers(serve, COOKIES).items():
        head = get(port).split(b"\r\n\r\n", 1)[0]
        assert head.startswith(b"HTTP/1.1 200 "), (api, head)
        assert b"\r\nSet-Cookie: a=1; Path=/\r\n" in head, (api, head)
        assert b"\r\nSet-Cookie: b=2; Path=/\r\n" in head, (api, head)
        assert head.count(b"text/event-stream") == 1, (api, head)
