"""App routing, handler return values and misuse of the stream API."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from werkzeug.exceptions import Forbidden
from werkzeug.test import Client
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from tests.helpers import RawStream

Serve = Callable[..., Server]


def make_app() -> App:
    app = App()

    @app.route("/text")
    def text(event: Event) -> str:
        return "<b>hi</b>"

    @app.route("/bytes")
    def raw(event: Event) -> bytes:
        return b"raw"

    @app.route("/json")
    def as_json(event: Event) -> dict[str, int]:
        return {"a": 1}

    @app.route("/created", methods=["POST"])
    def created(event: Event) -> tuple[str, int, dict[str, str]]:
        return event.request.get_data(as_text=True), 201, {"X-Id": "7"}

    @app.route("/response")
    def response(event: Event) -> Response:
        return Response("custom", status=202, mimetype="text/plain")

    @app.route("/forbidden")
    def forbidden(event: Event) -> None:
        raise Forbidden()

    @app.route("/crash")
    def crash(event: Event) -> None:
        raise KeyError("secret")

    @app.route("/nothing")
    def nothing(event: Event) -> None:
        return None

    @app.route("/items/<int:item>")
    def item(event: Event) -> dict[str, object]:
        return dict(event.path_params)

    return app


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "content_type"),
    [
        ("GET", "/text", 200, b"<b>hi</b>", "text/html; charset=utf-8"),
        ("GET", "/bytes", 200, b"raw", "text/html; charset=utf-8"),
        ("GET", "/json", 200, b'{"a": 1}', "application/json"),
        ("POST", "/created", 201, b"payload", "text/html; charset=utf-8"),
        ("GET", "/response", 202, b"custom", "text/plain; charset=utf-8"),
        ("GET", "/items/5", 200, b'{"item": 5}', "application/json"),
    ],
)
def test_handler_return_values(
    method: str, path: str, status: int, body: bytes, content_type: str
) -> None:
    """Handlers return str, bytes, dicts, tuples or Responses, as in Flask."""
    client = Client(make_app())
    response = client.open(path, method=method, data="payload")
    assert (response.status_code, response.data) == (status, body)
    assert response.headers["Content-Type"] == content_type


def test_tuple_headers_are_applied() -> None:
    """(body, status, headers) sets the headers."""
    response = Client(make_app()).post("/created", data="x")
    assert response.headers["X-Id"] == "7"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/missing", 404), ("POST", "/text", 405), ("GET", "/forbidden", 403)],
)
def test_http_errors(method: str, path: str, status: int) -> None:
    """Unknown paths, wrong methods and HTTPExceptions answer as werkzeug does."""
    assert Client(make_app()).open(path, method=method).status_code == status


@pytest.mark.parametrize(
    ("path", "logged"),
    [("/crash", "KeyError"), ("/nothing", "returned None without starting a stream")],
)
def test_handler_errors_are_logged_500s(
    path: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing handler answers 500 and logs why, never leaking details."""
    with caplog.at_level(logging.ERROR, logger="gsse"):
        response = Client(make_app()).get(path)
    assert response.status_code == 500
    assert b"secret" not in response.data
    assert logged in caplog.text


def _event() -> Event:
    return Event(Request.from_values("/events"), {})


def test_set_stream_callback_before_start_sse_says_what_to_do() -> None:
    """Misuse raises RuntimeError naming the right order."""
    with pytest.raises(RuntimeError, match=r"call event.start_sse\(\) first"):
        _event().set_stream_callback(lambda writer: None)


def test_set_stream_callback_twice_is_refused() -> None:
    """A stream has one callback."""
    event = _event()
    event.start_sse()
    event.set_stream_callback(lambda writer: None)
    with pytest.raises(RuntimeError, match="already called"):
        event.set_stream_callback(lambda writer: None)


def test_start_sse_twice_and_bad_arguments() -> None:
    """start_sse validates at once: twice, a bad retry, a non-callable callback."""
    event = _event()
    event.start_sse()
    with pytest.raises(RuntimeError, match="already called"):
        event.start_sse()
    with pytest.raises(ValueError, match="retry must be >= 0"):
        _event().start_sse(retry=-1)
    fresh = _event()
    fresh.start_sse()
    with pytest.raises(TypeError, match="must be callable"):
        fresh.set_stream_callback("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping must be >= 0"):
        _event().start_sse(ping=-1)


def test_start_sse_without_callback_is_a_logged_500(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Forgetting the callback is reported, not left hanging."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()

    with caplog.at_level(logging.ERROR, logger="gsse"):
        response = Client(app).get("/events")
    assert response.status_code == 500
    assert "without event.set_stream_callback" in caplog.text


def test_extra_headers_reach_the_client(serve: Serve) -> None:
    """start_sse(headers=...) adds headers and may replace the defaults."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse(headers={"X-Stream": "yes", "Cache-Control": "no-store"})
        event.set_stream_callback(SSEWriter.close)

    server = serve(app)
    with RawStream(server.port) as stream:
        assert stream.headers["x-stream"] == "yes"
        assert stream.headers["cache-control"] == "no-store"


def test_header_injection_is_refused() -> None:
    """A header value with a newline never reaches the wire."""
    with pytest.raises(ValueError):
        _event().start_sse(headers={"X-Bad": "a\r\nSet-Cookie: x=1"})


def test_duplicate_endpoint_names_are_refused() -> None:
    """Two handlers with one endpoint name is a mistake, reported at import."""
    app = App()

    @app.route("/a")
    def handler(event: Event) -> str:
        return "a"

    with pytest.raises(ValueError, match="already used"):

        @app.route("/b", endpoint="handler")
        def other(event: Event) -> str:
            return "b"


def test_json_body_is_valid_json() -> None:
    """dict returns are real JSON documents."""
    assert json.loads(Client(make_app()).get("/json").data) == {"a": 1}
