"""Bad header names and values for a stream are refused before anything is sent."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gsse import App
from gsse import Broker
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse import stream
from gsse.headers import check_headers
from tests.reliability.support import raw_request

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

BAD_VALUES = [
    "\x00",
    "a\x00b",
    "\x1b[2J",
    "x\rSet-Cookie: a=1",
    "x\nSet-Cookie: a=1",
    "x\r\nSet-Cookie: a=1",
    "\x0b",
    "\x0c",
    "\x1f",
    "\x7f",
    "\x85",
    "\x9b31m",
    "\u20ac",  # the euro sign: beyond latin-1
    "\u2028",
]
BAD_NAMES = [
    "",
    "X Name",
    "X:Name",
    "X\r\nSet-Cookie",
    "X\x00",
    "X\tName",
    "(x)",
    "a/b",
    "X@Y",
    "na\xefve",
    "X\x1b",
    "X-Caf\u00e9",
]
GOOD = {
    "X-Tab": "a\tb",
    "X-Latin1": "caf\xe9",
    "X-Int": 5,
    "!#$%&'*+-.^_`|~": "token chars",
    "X-Empty": "",
    "Cache-Control": "no-cache, no-transform",
}


def fresh_event() -> Event:
    return Event(Request(EnvironBuilder(path="/events").get_environ()), {})


@pytest.mark.parametrize("value", BAD_VALUES)
def test_start_sse_refuses_control_characters_in_values(value: str) -> None:
    """start_sse raises ValueError showing the value, and the event stays unstarted."""
    event = fresh_event()
    with pytest.raises(ValueError, match="X-Bad") as info:
        event.start_sse(headers={"X-Bad": value})
    assert repr(value) in str(info.value)
    assert not event.started


@pytest.mark.parametrize("name", BAD_NAMES)
def test_start_sse_refuses_names_that_are_not_tokens(name: str) -> None:
    """A header name outside RFC 9110's token characters raises ValueError."""
    event = fresh_event()
    with pytest.raises(ValueError, match="not an HTTP token") as info:
        event.start_sse(headers={name: "v"})
    assert repr(name) in str(info.value)
    assert not event.started


@pytest.mark.parametrize(
    "headers",
    [{5: "v"}, {b"X": "v"}, {"X": None}, {"X": b"v"}, {"X": 1.5}, {"X": True}],
)
def test_wrong_types_raise_type_error(headers: Any) -> None:
    """Names must be str, values str or int; others raise TypeError."""
    with pytest.raises(TypeError, match="must be a str"):
        fresh_event().start_sse(headers=headers)


@pytest.mark.parametrize("value", BAD_VALUES[:6] + BAD_VALUES[-2:])
def test_gsse_stream_and_broker_stream_refuse_the_same(value: str) -> None:
    """gsse.stream and Broker.stream raise at the call, before any response exists."""
    with pytest.raises(ValueError, match="control character|cannot carry"):
        stream(lambda writer: None, headers={"X-Bad": value})
    with pytest.raises(ValueError, match="not an HTTP token"):
        stream(lambda writer: None, headers=Headers([("X Bad", "v")]))
    broker = Broker.from_url("memory://")
    try:
        with pytest.raises(ValueError, match="control character|cannot carry"):
            broker.stream("news", headers={"X-Bad": value})
    finally:
        broker.close()


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"X-Bad": "a\x1bb"}, ValueError),
        ({"X Bad": "v"}, ValueError),
        ({"X": None}, TypeError),
    ],
)
def test_the_client_refuses_bad_request_headers(headers: Any, error: type) -> None:
    """gsse.client.EventSource checks its request headers the same way, at once."""
    from gsse.client import EventSource

    with pytest.raises(error) as info:
        EventSource("http://127.0.0.1:9/events", headers=headers)
    assert repr(next(iter(headers.items()))[0]) in str(info.value)


def test_good_headers_pass_unchanged() -> None:
    """Tab, latin-1, ints, every token character and repeated names are kept."""
    checked = check_headers(GOOD)
    assert checked is not None
    assert checked["X-Int"] == "5"
    assert checked["X-Tab"] == "a\tb"
    repeated = check_headers(Headers([("Link", "<a>"), ("Link", "<b>")]))
    assert repeated is not None and repeated.getlist("Link") == ["<a>", "<b>"]
    assert check_headers([("X-Pair", "v")]) == Headers([("X-Pair", "v")])
    assert check_headers({}) is None and check_headers(None) is None


def _get(port: int, target: str) -> bytes:
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return raw_request(port, request.encode("latin-1"), timeout=10)


@pytest.mark.parametrize("kind", ["gsse", "flask"])
def test_over_a_socket_nothing_of_a_bad_header_is_sent(serve: Serve, kind: str) -> None:
    """A refused header gives a plain 500: no stream, no callback, no bad byte."""
    runs: list[str] = []

    def callback(writer: SSEWriter) -> None:
        runs.append("ran")
        writer.close()

    if kind == "gsse":
        app: Any = App()

        @app.route("/events")
        def events(event: Event) -> None:
            args = event.request.args
            event.start_sse(headers={args["name"]: args["value"]})
            event.set_stream_callback(callback)

    else:
        app = Flask(__name__)

        @app.route("/events")
        def flask_events() -> Any:
            from flask import request

            return stream(
                callback, headers={request.args["name"]: request.args["value"]}
            )

    server = serve(app)
    cases = [("X-Bad", value) for value in BAD_VALUES] + [
        (name, "v") for name in BAD_NAMES
    ]
    for name, value in cases:
        query = urllib.parse.urlencode({"name": name, "value": value})
        answer = _get(server.port, f"/events?{query}")
        head = answer.partition(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 500"), (name, value, head)
        assert b"text/event-stream" not in head
        assert b"X-Bad" not in head and b"\x1b" not in answer and b"\x00" not in answer
    ok = _get(server.port, "/events?name=X-Fine&value=a%09b")
    assert ok.startswith(b"HTTP/1.1 200") and b"X-Fine: a\tb\r\n" in ok
    assert runs == ["ran"]
