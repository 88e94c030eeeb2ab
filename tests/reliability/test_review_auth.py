"""Auth checks that hide an async function still fail closed, over real sockets.

``check_plain`` refuses an ``async def`` check where it is given, but a
lambda or a ``functools.wraps`` decorator around one (or a generator
function) passes that check and returns a coroutine or generator at each
request: truthy, so it must never count as "allowed".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request

from gsse import App
from gsse import Event
from gsse import Server
from gsse.auth import AuthMiddleware
from gsse.auth import authorize
from gsse.auth import require_channels
from tests.reliability.support import raw_request

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

SECRET = "protected-content-review"


async def deny(request: Request, channel: str = "") -> bool:
    return False


@functools.wraps(deny)
def wrapped_async(request: Request, channel: str = "") -> Any:
    return deny(request, channel)


def generator_check(request: Request, channel: str = "") -> Iterator[bool]:
    yield False


DISGUISED: dict[str, Callable[..., Any]] = {
    "lambda returning a coroutine": lambda request, channel="": deny(request),
    "functools.wraps of async def": wrapped_async,
    "generator function": generator_check,
}


def app_with(check: Callable[..., Any]) -> App:
    app = App()

    @app.route("/decorated")
    @authorize(check)
    def decorated(event: Event) -> str:
        return SECRET

    @app.route("/channels")
    def channels(event: Event) -> str:
        require_channels(event, ["news"], check)
        return SECRET

    @app.route("/events")
    def events(event: Event) -> str:
        return SECRET

    return app


def get(port: int, path: str) -> bytes:
    return raw_request(
        port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )


@pytest.mark.parametrize("kind", DISGUISED, ids=list(DISGUISED))
def test_a_check_returning_a_coroutine_refuses_the_request(
    serve: Serve, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """authorize, require_channels and AuthMiddleware answer 500, never the view."""
    check = DISGUISED[kind]
    app = app_with(check)
    server = serve(AuthMiddleware(app, check, paths=["/events"]))
    with caplog.at_level(logging.ERROR, logger="gsse.auth"):
        for path in ["/decorated", "/channels", "/events", "//events", "/EVENTS"]:
            response = get(server.port, path)
            assert SECRET.encode() not in response, (kind, path)
            assert response.startswith(b"HTTP/1.1 500 "), (kind, path, response[:80])
    assert "plain def returning true or false" in caplog.text
    assert "never awaited" not in caplog.text
