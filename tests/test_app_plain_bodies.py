"""A handler's bare str, bytes, dict or list is answered without a werkzeug
Response, with the very bytes a Response would have put on the wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Request

from gsse import App
from gsse import Event
from gsse import Server
from tests.reliability.support import raw_request

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

VALUES: dict[str, Any] = {
    "str": "pong",
    "unicode": "voilà €",
    "bytes": b"\x00raw\xff",
    "empty": "",
    "dict": {"a": [1, "é"]},
    "list": [1, 2, {"x": None}],
}


def make_app() -> App:
    app = App()
    for name, value in VALUES.items():
        app.route(f"/{name}", endpoint=name, methods=["GET", "HEAD"])(
            lambda event, value=value: value
        )
    return app


def through_werkzeug(app: App) -> Any:
    """The same app, every answer built as a werkzeug Response."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return app.dispatch(Request(environ))(environ, start_response)

    return wsgi


def without_date(reply: bytes) -> bytes:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Date:")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("name", list(VALUES))
def test_plain_bodies_are_byte_for_byte_a_responses(
    serve: Serve, name: str, method: str
) -> None:
    app = make_app()
    fast, slow = serve(app), serve(through_werkzeug(app))
    request = f"{method} /{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    replies = [
        without_date(raw_request(server.port, request.encode()))
        for server in (fast, slow)
    ]
    assert replies[0] == replies[1]
    assert replies[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_tuple_or_status_still_goes_through_a_response(serve: Serve) -> None:
    app = App()

    @app.route("/t")
    def tuple_value(event: Event) -> Any:
        return "made", 201, {"X-A": "b"}

    reply = raw_request(
        serve(app).port, b"GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 201 CREATED\r\n") and b"X-A: b" in reply
