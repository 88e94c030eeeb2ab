"""Auth hooks refuse streams before headers; CORS lets chosen origins in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Request

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.auth import AuthMiddleware
from gsse.auth import CORSMiddleware
from gsse.auth import authorize
from gsse.auth import require_channels
from tests.helpers import RawStream
from tests.reliability.support import counter

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)


def token_ok(request: Request) -> bool:
    return request.args.get("token") == "s3cret" or "session=ok" in request.headers.get(
        "Cookie", ""
    )


def guarded_app(runs: list[str]) -> App:
    app = App()

    @app.route("/events")
    @authorize(token_ok)
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(lambda writer: _hello(writer, runs))

    @app.route("/rooms/<room>")
    def room(event: Event) -> None:
        require_channels(
            event, [event.path_params["room"]], lambda r, ch: ch.startswith("public-")
        )
        event.start_sse()
        event.set_stream_callback(lambda writer: _hello(writer, runs))

    @app.route("/admin")
    @authorize(lambda request: _forbid())
    def admin(event: Event) -> None:
        raise AssertionError("never reached")

    return app


def _forbid() -> bool:
    raise Forbidden("admins only")


def _hello(writer: SSEWriter, runs: list[str]) -> None:
    runs.append("ran")
    writer.send_event("hello")
    writer.close()


def test_authorize_refuses_before_headers_and_counts(serve: Serve) -> None:
    """No token: 401 and the callback never runs; a token or cookie: the stream."""
    runs: list[str] = []
    server = serve(guarded_app(runs))
    before = counter("auth_denied")
    with RawStream(server.port, "/events") as refused:
        assert refused.status == 401
        assert "text/event-stream" not in refused.headers.get("content-type", "")
    assert runs == []
    assert counter("auth_denied") == before + 1
    with RawStream(server.port, "/events?token=s3cret") as ok:
        assert ok.status == 200
        assert b"hello" in ok.read_to_end()
    with RawStream(server.port, "/events", headers={"Cookie": "session=ok"}) as ok:
        assert ok.status == 200
    with RawStream(server.port, "/admin") as forbidden:
        assert forbidden.status == 403
    assert runs == ["ran", "ran"]


def test_require_channels_answers_403_naming_the_channel(serve: Serve) -> None:
    """A channel the check refuses gets 403 before any header of the stream."""
    runs: list[str] = []
    server = serve(guarded_app(runs))
    with RawStream(
        server.port, "/rooms/secret", headers={"Connection": "close"}
    ) as refused:
        assert refused.status == 403
        assert b"secret" in refused.read_to_end()
    with RawStream(server.port, "/rooms/public-1") as ok:
        assert ok.status == 200
    assert runs == ["ran"]


def test_auth_middleware_guards_any_wsgi_app(serve: Serve) -> None:
    """AuthMiddleware protects the listed paths of any WSGI app, fast path intact."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(lambda writer: writer.send_event("in"))

    @app.route("/")
    def index(event: Event) -> str:
        return "public"

    server = serve(AuthMiddleware(app, token_ok, paths=["/events"]))
    with RawStream(server.port, "/events") as refused:
        assert refused.status == 401
    with RawStream(server.port, "/events?token=s3cret") as ok:
        assert ok.status == 200
        ok.read_until(b"data: in")
    with RawStream(server.port, "/", headers={"Connection": "close"}) as plain:
        assert plain.status == 200


def cors_app() -> App:
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        cookie = event.request.cookies.get("session", "none")
        event.set_stream_callback(lambda writer: writer.send_event(f"cookie={cookie}"))

    return app


def test_cors_headers_for_allowed_origins_only(serve: Serve) -> None:
    """An allowed origin is echoed with credentials; others get no CORS headers."""
    app = CORSMiddleware(
        cors_app(), origins=["http://good.example"], allow_credentials=True
    )
    server = serve(app)
    with RawStream(server.port, headers={"Origin": "http://good.example"}) as ok:
        assert ok.headers["access-control-allow-origin"] == "http://good.example"
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert ok.headers["vary"] == "Origin"
        ok.read_until(b"cookie=none")
    with RawStream(server.port, headers={"Origin": "http://evil.example"}) as other:
        assert "access-control-allow-origin" not in other.headers
    preflight = {
        "Origin": "http://good.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
    }
    with RawStream(server.port, method="OPTIONS", headers=preflight) as answer:
        assert answer.status == 204
        assert "Last-Event-ID" in answer.headers["access-control-allow-headers"]


@pytest.mark.parametrize(
    ("origins", "credentials", "message"),
    [
        ("*", True, "allow_credentials"),
        (["https://app.example/"], False, "trailing slash"),
        (["app.example"], False, "scheme://host"),
        ("https://app.example", False, "list of origins"),
    ],
)
def test_bad_cors_settings_are_rejected(
    origins: object, credentials: bool, message: str
) -> None:
    """Settings browsers would refuse raise ValueError saying what to write."""
    with pytest.raises(ValueError, match=message):
        CORSMiddleware(cors_app(), origins, allow_credentials=credentials)  # type: ignore[arg-type]


BROWSER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from playwright.sync_api import sync_playwright
    page_url, stream_url = sys.argv[1], sys.argv[2]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],
        )
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "session", "value": "ok",
                                  "url": stream_url}])
            page = context.new_page()
            page.goto(page_url)
            result = page.evaluate('''(url) => new Promise((resolve) => {
                const source = new EventSource(url, {withCredentials: true});
                source.onmessage = (e) => { source.close(); resolve(e.data); };
                source.onerror = () => { source.close(); resolve("error"); };
                setTimeout(() => resolve("timeout"), 10000);
            })''', stream_url)
            print(json.dumps(result))
        finally:
            browser.close()
    """
)


@pytest.mark.browser
def test_a_browser_event_source_with_credentials_from_another_origin(
    serve: Serve,
) -> None:
    """Chromium opens a withCredentials EventSource across origins; cookie sent."""
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("needs Debian chromium at /usr/bin/chromium")
    pytest.importorskip("playwright.sync_api", reason="needs python playwright")
    page = App()

    @page.route("/")
    def index(event: Event) -> str:
        return "<!doctype html><title>page</title>"

    page_server = serve(page)
    page_origin = f"http://127.0.0.1:{page_server.port}"
    stream_server = serve(
        CORSMiddleware(cors_app(), origins=[page_origin], allow_credentials=True)
    )
    # localhost and 127.0.0.1 are different origins (and sites) for the browser.
    stream_url = f"http://127.0.0.1:{stream_server.port}/events"

    def browse(url: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", BROWSER_SCRIPT, url, stream_url],
            capture_output=True,
            text=True,
            timeout=45,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return str(json.loads(done.stdout.strip().splitlines()[-1]))

    assert browse(page_origin + "/") == "cookie=ok"
    # A page from an origin not on the list is refused by the browser.
    other = serve(page)
    assert browse(f"http://127.0.0.1:{other.port}/") == "error"


def test_the_secure_example_refuses_then_streams(serve: Serve) -> None:
    """examples/secure.py: 401 without the cookie, the stream and metrics with it."""
    from examples.secure import wsgi_app

    server = serve(wsgi_app, max_streams_per_ip=10)
    for path in ["/events", "/metrics", "//metrics"]:
        with RawStream(server.port, path, headers={"Connection": "close"}) as refused:
            assert refused.status == 401
            assert b"gsse_" not in refused.read_to_end()
    with RawStream(server.port, "/login", headers={"Connection": "close"}) as login:
        cookie = login.headers["set-cookie"].split(";")[0]
    metrics_headers = {"Cookie": cookie, "Connection": "close"}
    with RawStream(server.port, "/metrics", headers=metrics_headers) as metrics:
        assert metrics.status == 200
        assert b"gsse_auth_denied_total" in metrics.read_to_end()
    origin = "http://127.0.0.1:3000"
    with RawStream(
        server.port, "/events", headers={"Cookie": cookie, "Origin": origin}
    ) as ok:
        assert ok.status == 200
        assert ok.headers["access-control-allow-origin"] == origin
        assert ok.headers["access-control-allow-credentials"] == "true"
        ok.read_until(b"event: time")
