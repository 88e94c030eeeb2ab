"""SSEMiddleware and gsse.stream under every host, over real sockets.

In-process tests serve apps with gevent's own ``WSGIServer`` (the host that
has none of the gsse server's features) to show what the middleware adds;
the host tests run tests/apps/flask_hosts.py, unchanged, under ``gsse run``,
``gunicorn -k gevent`` and a plain pywsgi script in real processes, and
under two servers that are not gevent's.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import gsse
from gsse import SSEMiddleware
from gsse import SSEWriter
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.procs import Processes
from tests.procs import ServerProcess
from tests.procs import free_port
from tests.procs import processes

pytestmark = pytest.mark.timeout(90)

HOSTS_APP = "tests.apps.flask_hosts:app"


def flask_stream(callback: Callable[[SSEWriter], object], **options: object) -> Flask:
    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> gsse.SSEResponse:
        return gsse.stream(callback, **options)  # type: ignore[arg-type]

    @flask_app.get("/")
    def index() -> str:
        return "page"

    return flask_app


def wait_forever(writer: SSEWriter) -> None:
    while not writer.closed and not writer.shutting_down:
        time.sleep(0.02)
    if writer.shutting_down and not writer.closed:
        writer.send_event("bye", event="shutdown")
        writer.close()


# -- options ------------------------------------------------------------------


def test_options_are_checked_and_server_only_ones_named() -> None:
    """A server-only option says where it belongs; a typo is a TypeError."""
    app = Flask(__name__)
    with pytest.raises(
        TypeError, match="max_header_size is an option of the gsse server"
    ):
        SSEMiddleware(app, max_header_size=1024)
    with pytest.raises(TypeError, match="unknown option 'pingg'"):
        SSEMiddleware(app, pingg=3)
    with pytest.raises(ValueError, match="ping must be >= 0"):
        SSEMiddleware(app, ping=-1)
    with pytest.raises(ValueError, match="max_streams must be a positive int"):
        SSEMiddleware(app, max_streams=0)
    with pytest.raises(TypeError, match="wraps a WSGI callable"):
        SSEMiddleware("app")  # type: ignore[arg-type]


def test_gsse_exports_the_documented_names() -> None:
    """``gsse.__all__`` is the public API of ../shared/API.md, sorted."""
    assert gsse.__all__ == sorted(gsse.__all__)
    for name in ("App", "Event", "SSEWriter", "SSEMiddleware", "stream", "run"):
        assert name in gsse.__all__ and hasattr(gsse, name)


# -- what the middleware adds under a plain gevent host -------------------------


def test_headers_first_then_pings_under_plain_pywsgi(
    pywsgi: Callable[..., int],
) -> None:
    """Headers reach the client before the callback writes; idle streams ping."""
    started = threading.Event()

    def quiet(writer: SSEWriter) -> None:
        started.set()
        wait_forever(writer)

    port = pywsgi(SSEMiddleware(flask_stream(quiet), ping=0.2))
    with RawStream(port, "/events") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        assert "content-length" not in stream.headers
        assert wait_until(started.is_set)
        stream.read_until(b": ping", timeout=5)


def test_a_client_that_leaves_is_noticed(pywsgi: Callable[..., int]) -> None:
    """A closed connection closes the writer, and the stream is forgotten."""
    seen_closed = threading.Event()

    def until_gone(writer: SSEWriter) -> None:
        wait_forever(writer)
        if writer.closed:
            seen_closed.set()

    middleware = SSEMiddleware(flask_stream(until_gone), ping=0.1)
    port = pywsgi(middleware)
    with RawStream(port, "/events") as stream:
        stream.read_until(b": ok")
        assert middleware.open_streams == 1
    assert wait_until(seen_closed.is_set, timeout=10)
    assert wait_until(lambda: middleware.open_streams == 0, timeout=5)


def test_a_failing_callback_is_logged_and_hurts_nobody(
    pywsgi: Callable[..., int], caplog: pytest.LogCaptureFixture
) -> None:
    """The broken stream ends cleanly; the next stream and pages still work."""
    calls = []

    def flaky(writer: SSEWriter) -> None:
        calls.append(1)
        writer.send_event(f"call {len(calls)}")
        if len(calls) == 1:
            raise RuntimeError("callback bug")
        writer.close()

    port = pywsgi(SSEMiddleware(flask_stream(flaky)))
    with caplog.at_level(logging.ERROR, logger="gsse"):
        with RawStream(port, "/events") as broken:
            assert b"data: call 1" in broken.read_to_end()
            assert broken.ended and not broken.cut
    assert "callback bug" in caplog.text
    with RawStream(port, "/events") as fine:
        assert b"data: call 2" in fine.read_to_end()
    assert http_get(port, "/") == (200, b"page")


def test_stream_limits_answer_before_any_header(pywsgi: Callable[..., int]) -> None:
    """Over max_streams: 503; over max_streams_per_ip: 429; both with Retry-After."""
    app = flask_stream(wait_forever)
    limited = {  # pings notice a client that left
        503: SSEMiddleware(app, max_streams=1, retry_after=7, ping=0.1),
        429: SSEMiddleware(app, max_streams_per_ip=1, ping=0.1),
    }
    for status, middleware in limited.items():
        port = pywsgi(middleware)
        close = {"Connection": "close"}
        with RawStream(port, "/events") as first:
            first.read_until(b": ok")
            with RawStream(port, "/events", headers=close) as second:
                assert second.status == status
                expected = "7" if status == 503 else "5"
                assert second.headers["retry-after"] == expected
                assert second.headers["content-type"].startswith("text/plain")
                assert b"streams" in second.read_to_end()
            assert http_get(port, "/") == (200, b"page")  # pages are never refused
        # Once the first stream is gone, its place is free again.
        assert wait_until(lambda m=middleware: m.open_streams == 0, timeout=10)
        with RawStream(port, "/events", headers=close) as again:
            assert again.status == 200


def test_shutdown_lets_streams_say_goodbye(pywsgi: Callable[..., int]) -> None:
    """shutdown(): writers see shutting_down, bodies end with correct framing."""
    middleware = SSEMiddleware(flask_stream(wait_forever))
    port = pywsgi(middleware)
    with RawStream(port, "/events") as stream:
        stream.read_until(b": ok")
        closer = gevent.spawn(middleware.shutdown, 5)
        assert b"event: shutdown\ndata: bye" in stream.read_to_end(timeout=10)
        assert stream.ended and not stream.cut
        assert closer.get(timeout=10) == 0  # every stream ended by itself
    with RawStream(port, "/events", headers={"Connection": "close"}) as late:
        assert late.status == 503
        assert b"shutting down" in late.read_to_end()


def test_shutdown_closes_streams_that_ignore_it(pywsgi: Callable[..., int]) -> None:
    """A callback that never looks at shutting_down is closed after the grace."""

    def stubborn(writer: SSEWriter) -> None:
        while not writer.closed:
            time.sleep(0.02)

    middleware = SSEMiddleware(flask_stream(stubborn), graceful_timeout=0.3)
    port = pywsgi(middleware)
    with RawStream(port, "/events") as stream:
        stream.read_until(b": ok")
        assert middleware.shutdown() == 1
        stream.read_to_end()
        assert stream.ended and not stream.cut


def test_blocking_callbacks_run_in_the_middleware_pool(
    pywsgi: Callable[..., int],
) -> None:
    """blocking=True: a real OS thread from the middleware's own pool."""

    def in_a_thread(writer: SSEWriter) -> None:
        writer.send_event(threading.current_thread().name)
        writer.close()

    middleware = SSEMiddleware(flask_stream(in_a_thread, blocking=True), threads=2)
    port = pywsgi(middleware)
    with RawStream(port, "/events") as stream:
        (message,) = stream.events(1)
        assert message.data != threading.main_thread().name
    assert middleware.pool.pool.maxsize == 2


def test_a_full_middleware_pool_answers_with_its_retry_after(
    pywsgi: Callable[..., int],
) -> None:
    """blocking=True past the pool's queue: 503 with the middleware's Retry-After."""
    release = threading.Event()

    def hold(writer: SSEWriter) -> None:
        release.wait(60)
        writer.close()

    middleware = SSEMiddleware(
        flask_stream(hold, blocking=True), threads=1, retry_after=7
    )
    port = pywsgi(middleware)
    # One running and a full queue behind it (ten per thread).
    held = [RawStream(port, "/events") for _ in range(11)]
    try:
        assert all(stream.status == 200 for stream in held)
        assert wait_until(lambda: middleware.pool.pending == 11, timeout=60)
        with RawStream(port, "/events", headers={"Connection": "close"}) as refused:
            assert refused.status == 503
            assert refused.headers["retry-after"] == "7"
    finally:
        release.set()
        for stream in held:
            stream.close()


def test_under_the_gsse_server_the_server_keeps_the_streams(
    serve: Callable[..., gsse.Server], caplog: pytest.LogCaptureFixture
) -> None:
    """The server's registry tracks the stream; the middleware's ping and limits
    apply to its own streams; options the server overrides are named once."""
    app = flask_stream(wait_forever)
    middleware = SSEMiddleware(app, ping=0.2, max_streams=1, threads=3)
    server = serve(middleware, ping=30)
    close = {"Connection": "close"}
    with caplog.at_level(logging.WARNING, logger="gsse.middleware"):
        with RawStream(server.port, "/events") as stream:
            stream.read_until(b": ping", timeout=5)
            assert len(server.registry) == 1
            assert middleware.open_streams == 1
            with RawStream(server.port, "/events", headers=close) as second:
                assert second.status == 503
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "threads=3 given to the middleware do not apply" in warnings[0]
    assert wait_until(lambda: middleware.open_streams == 0, timeout=10)
    # Two middlewares on one server each count (and limit) only their own.
    caplog.clear()
    first, second_app = SSEMiddleware(app, max_streams=1), SSEMiddleware(app)
    both = serve(DispatcherMiddleware(first, {"/b": second_app}))
    with caplog.at_level(logging.WARNING, logger="gsse.middleware"):
        with RawStream(both.port, "/b/events") as b_stream:
            b_stream.read_until(b": ok")
            with RawStream(both.port, "/events") as a_stream:
                a_stream.read_until(b": ok")  # b's stream does not count here
                assert (first.open_streams, second_app.open_streams) == (1, 1)
    assert caplog.records == []  # nothing the server overrides was given


def test_a_flask_stream_without_the_middleware_is_the_servers_stream(
    serve: Callable[..., gsse.Server],
) -> None:
    """Flask swaps the response's class; the server still owns the stream.

    Its registry tracks it (so shutdown reaches it) and its settings apply.
    """
    server = serve(flask_stream(wait_forever), ping=0.2)
    with RawStream(server.port, "/events") as stream:
        stream.read_until(b": ping", timeout=5)
        assert len(server.registry) == 1
        stopping = gevent.spawn(server.stop, 5)
        assert b"event: shutdown\ndata: bye" in stream.read_to_end(timeout=10)
        assert stream.ended and not stream.cut
        assert stopping.get(timeout=10) == 0


# -- the same app file under three gevent hosts, in real processes ------------


def start_host(procs: Processes, host: str) -> ServerProcess:
    if host.startswith("gsse run"):
        extra = host.split()[2:]  # --workers 2, --reload
        proc = procs.gsse(
            "run", HOSTS_APP, "--port", "0", "--graceful-timeout", "5", *extra
        )
        proc.wait_ready()
        return proc
    port = free_port()
    if host.startswith("gunicorn"):
        worker = host.split()[2]
        hook = ["-c", "python:gsse.gunicorn"] if worker == "gevent" else []
        args = [
            sys.executable, "-m", "gunicorn", "-k", worker, "--workers", "1", *hook,
            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "10", HOSTS_APP,
        ]  # fmt: skip
    else:
        args = [sys.executable, "-m", "tests.apps.pywsgi_host", str(port)]
    proc = procs.start(args)
    proc.wait_port(port)
    return proc


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as manager:
        yield manager


def session_cookie(port: int, user: str) -> str:
    with RawStream(port, f"/login/{user}", headers={"Connection": "close"}) as login:
        assert login.status == 200
        cookie = login.headers["set-cookie"]
    return cookie.split(";", 1)[0]


HOSTS = ["gsse run", "gunicorn -k gevent", "pywsgi"]


@pytest.mark.parametrize("host", HOSTS)
def test_the_flask_app_streams_the_same_under_every_gevent_host(
    procs: Processes, host: str
) -> None:
    """Events, hooks, auth, sessions, error handlers, threads, isolation."""
    proc = start_host(procs, host)
    port = proc.port
    assert port is not None
    # Events arrive, the body ends properly, Flask's hooks ran.
    with RawStream(port, "/count?n=3") as stream:
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["x-hooks"] == "before,after"
        body = stream.read_to_end()
        assert body.startswith(b"retry: 1000\n\n")
        assert [m.data for m in stream.decoder.feed(body)] == ["0", "1", "2"]
        assert stream.ended and not stream.cut
    # An auth decorator's 401 never opens a stream.
    with RawStream(port, "/private/events", headers={"Connection": "close"}) as denied:
        assert denied.status == 401
        assert "event-stream" not in denied.headers["content-type"]
        assert b"log in first" in denied.read_to_end()
    # With a session, the callback sees the copied request context.
    headers = {"Cookie": session_cookie(port, "ann")}
    with RawStream(port, "/private/events?room=lobby", headers=headers) as private:
        assert [m.data for m in private.events(1)] == ["hello ann from lobby"]
    # Flask's error handler answers for a view that fails before streaming.
    with RawStream(port, "/missing/events", headers={"Connection": "close"}) as missing:
        assert missing.status == 404
        assert missing.read_to_end() == b"handled: no such feed"
    # blocking=True runs in a real thread; a raising callback hurts nobody.
    with RawStream(port, "/blocking/events") as blocking:
        (thread,) = blocking.events(1)
        assert thread.data != "MainThread"
    with RawStream(port, "/raises/events") as raising:
        assert b"data: before the error" in raising.read_to_end()
        assert raising.ended
    assert http_get(port, "/") == (200, b"an ordinary page")
    assert "callback bug" in proc.log


#: Every way to serve the app and shut it down: each runs Host.shutdown, the
#: one graceful sequence, caught by gsse.signals (or by the script's own
#: handler that calls middleware.shutdown(), for pywsgi).
SHUTDOWN_HOSTS = [
    *HOSTS,
    "gsse run --workers 2",
    "gsse run --reload",
    "gunicorn -k gsse.workers.SSEWorker",
]


@pytest.mark.parametrize("host", SHUTDOWN_HOSTS)
def test_sigterm_ends_streams_cleanly_under_every_gevent_host(
    procs: Processes, host: str
) -> None:
    """On SIGTERM a stream says goodbye, its body ends, the process exits."""
    proc = start_host(procs, host)
    assert proc.port is not None
    with RawStream(proc.port, "/forever") as stream:
        stream.read_until(b"data: tick")
        proc.send(signal.SIGTERM)
        body = stream.read_to_end()
        assert b"event: bye\ndata: server going away" in body
        assert stream.ended and not stream.cut
    # The same graceful sequence ended the streams (Host.shutdown), and the
    # process exits 0: the pywsgi script of docs/flask.md calls
    # middleware.shutdown() on SIGTERM, gunicorn runs the gsse.gunicorn hook.
    assert proc.wait() == 0, proc.log


# -- servers that are not gevent's ----------------------------------------------


@pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
def test_a_non_gevent_server_gets_a_clear_500_not_a_hang(
    procs: Processes, server: str
) -> None:
    """Pages still work; a stream is refused, saying what to run instead."""
    port = free_port()
    proc = procs.start(
        [sys.executable, "-m", "tests.apps.threaded_host", server, str(port)]
    )
    proc.wait_port(port)
    assert http_get(port, "/") == (200, b"an ordinary page")
    with RawStream(
        port, "/count", headers={"Connection": "close"}, timeout=10
    ) as stream:
        assert stream.status == 500
        body = stream.read_to_end(timeout=10)
    assert b"streams need a gevent server" in body
    assert b"gsse run module:app" in body
    proc.wait_log("cannot stream /count under")
    # The middleware left SIGTERM alone here: the process ends at once.
    proc.send(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM
