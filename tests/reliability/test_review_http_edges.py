"""Edges of the HTTP layer found by an outside review, over real sockets.

HEAD never gets a body (not even a chunked terminator), header values keep
every UTF-8 byte, a second ``Last-Event-ID`` is refused, and headers a
framework changes after ``gsse.stream()`` are checked before they are sent.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from collections.abc import Iterator

import pytest
from flask import Flask
from flask import Response as FlaskResponse

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter

Serve = Callable[..., Server]

#: Generous bound for each socket read (the machine may be loaded).
PATIENCE = 60


def exchange(port: int, raw: bytes) -> bytes:
    """Send raw request bytes, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def flask_app(callback_runs: list[str]) -> Flask:
    app = Flask(__name__)

    def callback(writer: SSEWriter) -> None:
        callback_runs.append("ran")
        with writer:
            writer.send_event("hi")

    @app.get("/events")
    def events() -> FlaskResponse:
        return gsse.stream(callback)  # type: ignore[return-value]

    @app.get("/generated")
    def generated() -> FlaskResponse:
        return FlaskResponse(iter([b"one", b"two"]), mimetype="text/plain")

    @app.get("/plain")
    def plain() -> str:
        return "plain body"

    @app.get("/tampered")
    def tampered() -> FlaskResponse:
        response = gsse.stream(callback)
        response.headers["X-Bad"] = "a\x00b"
        return response  # type: ignore[return-value]

    return app


@pytest.fixture
def flask_server(serve: Serve) -> Iterator[tuple[int, list[str]]]:
    runs: list[str] = []
    yield serve(gsse.SSEMiddleware(flask_app(runs))).port, runs


@pytest.mark.parametrize("path", ["/events", "/generated", "/plain"])
def test_head_gets_no_body_and_the_next_response_is_intact(
    flask_server: tuple[int, list[str]], path: str
) -> None:
    """HEAD then GET on one connection: the HEAD answer has no body bytes at all."""
    port, runs = flask_server
    raw = exchange(
        port,
        f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    # The very next bytes are the second response's status line.
    assert rest.startswith(b"HTTP/1.1 200"), raw
    assert rest.endswith(b"plain body"), raw
    assert runs == []  # a HEAD never starts the stream's callback


def test_utf8_header_values_keep_every_byte(serve: Serve) -> None:
    """Last-Event-IDs whose UTF-8 ends in 0x85 or 0xa0 arrive whole."""
    seen: list[str | None] = []
    app = App()

    @app.route("/events")
    def events(event: Event) -> str:
        seen.append(event.last_event_id)
        return "ok"

    port = serve(app).port
    ids = ["voilà-1", "Å-2", "x\u00a0-3", "à"]
    for value in ids:
        raw = exchange(
            port,
            b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Last-Event-ID: " + value.encode() + b"\r\n\r\n",
        )
        assert raw.startswith(b"HTTP/1.1 200"), raw
    assert seen == ids


def test_a_second_last_event_id_is_refused(serve: Serve) -> None:
    """Two Last-Event-ID headers would be joined into another position: 400."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> str:
        raise AssertionError("the handler must not run")

    raw = exchange(
        serve(app).port,
        b"GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\r\n"
        b"Last-Event-ID: 2\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 400"), raw


def test_headers_changed_after_gsse_stream_are_checked(
    flask_server: tuple[int, list[str]],
) -> None:
    """A NUL put in by the view after gsse.stream(): 500, no stream, no NUL sent."""
    port, runs = flask_server
    raw = exchange(
        port, b"GET /tampered HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 500"), raw
    assert b"\x00" not in raw
    assert runs == []
