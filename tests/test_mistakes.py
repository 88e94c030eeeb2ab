"""Mistakes in stream callbacks are refused or told, never swallowed.

An ``async def`` callback is refused where it is given; a send after the
callback's own ``close()`` raises and is logged; a writer dropped while its
stream is open is closed with a warning that names the callback.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.pywsgi import WSGIServer

import gsse
import gsse.writer
from gsse import App
from gsse import ClientDisconnected
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.brokers.memory import MemoryBroker
from gsse.callbacks import check_callback
from gsse.stream import SSEBody
from tests.helpers import RawStream
from tests.helpers import stream_app
from tests.helpers import wait_until
from tests.procs import free_port
from tests.procs import processes

Serve = Callable[..., Server]


async def async_callback(writer: SSEWriter) -> None:
    writer.send_event("never")


async def async_generator(writer: SSEWriter) -> AsyncIterator[None]:
    yield None


class AsyncCallable:
    async def __call__(self, writer: SSEWriter) -> None:
        writer.send_event("never")


class WithAsyncMethod:
    async def feed(self, writer: SSEWriter) -> None:
        writer.send_event("never")


ASYNC_CALLBACKS = {
    "async def": async_callback,
    "async generator": async_generator,
    "partial of async def": functools.partial(async_callback),
    "object with async __call__": AsyncCallable(),
    "bound async method": WithAsyncMethod().feed,
    "partial of async __call__": functools.partial(AsyncCallable()),
}


def _set_on_event(callback: Any) -> None:
    event = Event(_request(), {})
    event.start_sse()
    event.set_stream_callback(callback)


def _request() -> Any:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    return Request(EnvironBuilder(path="/events").get_environ())


ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "gsse.stream": gsse.stream,
    "gsse.stream(blocking=True)": lambda cb: gsse.stream(cb, blocking=True),
    "event.set_stream_callback": _set_on_event,
    "SSEBody": SSEBody,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=list(ENTRY_POINTS))
@pytest.mark.parametrize("kind", ASYNC_CALLBACKS, ids=list(ASYNC_CALLBACKS))
def test_async_callbacks_are_refused_where_given(kind: str, entry: str) -> None:
    """Every entry point refuses every async callable, saying what to write."""
    with pytest.raises(TypeError) as info:
        ENTRY_POINTS[entry](ASYNC_CALLBACKS[kind])
    message = str(info.value)
    assert "async" in message and "plain def" in message


@pytest.mark.parametrize(
    "callback",
    [lambda w: w.close(), functools.partial(SSEWriter.close), SSEWriter.close],
    ids=["lambda", "partial", "unbound method"],
)
def test_plain_callables_are_accepted(callback: Any) -> None:
    """Plain functions, partials and methods are still accepted by every entry point."""
    for entry in ENTRY_POINTS.values():
        entry(callback)


def test_an_async_callback_in_a_live_handler_is_a_500_not_a_hang(serve: Serve) -> None:
    """A handler setting an async callback gets a 500, not `: ok` then nothing."""
    server = serve(stream_app(async_callback))
    with RawStream(server.port) as stream:
        assert stream.status == 500


def test_send_after_own_close_raises_and_is_logged(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A send after the callback's own close() raises, and a warning names it."""
    raised: list[BaseException] = []

    def close_then_send(writer: SSEWriter) -> None:
        writer.send_event("first")
        writer.close()
        try:
            writer.send_event("lost")
        except ClientDisconnected as exc:
            raised.append(exc)
            raise

    server = serve(stream_app(close_then_send))
    with caplog.at_level(logging.WARNING, logger="gsse"):
        with RawStream(server.port) as stream:
            body = stream.read_to_end()
        assert wait_until(lambda: "close_then_send" in caplog.text)
    assert b"first" in body and b"lost" not in body
    assert raised and "writer.close()" in str(raised[0])
    assert "sent after it closed the stream" in caplog.text


def test_a_client_leaving_a_with_writer_loop_is_no_callback_mistake(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """``with writer:`` around a send loop, and the client goes away: the
    callback ends, and no warning blames it for sending after its own close."""
    ended: list[str] = []

    def ticks(writer: SSEWriter) -> None:
        try:
            with writer:
                while True:
                    writer.send_event("tick")
                    gevent.sleep(0.05)
        finally:
            ended.append("ended")

    server = serve(stream_app(ticks))
    with caplog.at_level(logging.INFO, logger="gsse"):
        with RawStream(server.port) as stream:
            stream.events(2)
        assert wait_until(lambda: ended == ["ended"])
    assert "sent after it closed" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_send_after_own_close_raises_from_a_pool_thread(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """With blocking=True, a send after close() raises too and is logged by name."""
    raised: list[BaseException] = []

    def threaded_close_then_send(writer: SSEWriter) -> None:
        writer.close()
        try:
            writer.send_event("lost")
        except ClientDisconnected as exc:
            raised.append(exc)
            raise

    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(threaded_close_then_send, blocking=True)

    server = serve(app)
    with caplog.at_level(logging.WARNING, logger="gsse"):
        with RawStream(server.port) as stream:
            assert b"lost" not in stream.read_to_end()
        assert wait_until(lambda: "threaded_close_then_send" in caplog.text)
    assert raised


def test_close_by_another_greenlet_is_not_reported_as_a_mistake(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop whose stream another greenlet closed ends quietly (no warning)."""
    ended = gevent.event.Event()

    def loop_until_kicked(writer: SSEWriter) -> None:
        gevent.spawn_later(0.05, writer.close)
        try:
            while True:
                writer.send_event("tick")
                time.sleep(0.01)
        finally:
            ended.set()

    server = serve(stream_app(loop_until_kicked))
    with caplog.at_level(logging.WARNING, logger="gsse"):
        with RawStream(server.port) as stream:
            stream.read_to_end()
        assert ended.wait(5)
    assert "loop_until_kicked" not in caplog.text


def _returns_open(writer: SSEWriter) -> None:
    writer.send_event("hello")


def _returns_open_threaded(writer: SSEWriter) -> None:
    writer.send_event("hello")


def _returns_open_under_middleware(writer: SSEWriter) -> None:
    writer.send_event("hello")


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which callbacks were warned about (the warning is once per name)."""
    monkeypatch.setattr(gsse.writer, "_warned_dropped", set())


@pytest.mark.parametrize("blocking", [False, True], ids=["greenlet", "thread"])
def test_a_dropped_open_writer_is_named_in_a_warning_once(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    blocking: bool,
    fresh_warnings: None,
) -> None:
    """A callback returning open, keeping no writer, is named once; streams stay."""
    callback = _returns_open_threaded if blocking else _returns_open
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse(ping=0)
        event.set_stream_callback(callback, blocking=blocking)

    server = serve(app)
    with caplog.at_level(logging.WARNING, logger="gsse"):
        with RawStream(server.port) as first, RawStream(server.port) as second:
            assert first.events(1)[0].data == "hello"
            assert second.events(1)[0].data == "hello"
            assert wait_until(lambda: callback.__qualname__ in caplog.text)
            gevent.sleep(0.1)
            assert not first.ended and not second.ended  # still open, as documented
            assert len(server.registry) == 2
    named = [r for r in caplog.records if "returned without closing" in r.message]
    assert len(named) == 1 and callback.__qualname__ in named[0].message


def test_a_dropped_open_writer_is_named_under_the_middleware(
    caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    """Under SSEMiddleware on plain pywsgi (the host-iterated path) too."""
    from flask import Flask

    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> Any:
        return gsse.stream(_returns_open_under_middleware, ping=0)

    wrapped = gsse.SSEMiddleware(flask_app)
    server = WSGIServer(("127.0.0.1", 0), wrapped, log=None)
    server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gsse"):
            with RawStream(server.server_port) as stream:
                assert stream.events(1)[0].data == "hello"
                assert wait_until(
                    lambda: "_returns_open_under_middleware" in caplog.text
                )
    finally:
        server.stop(timeout=1)


def test_a_writer_handed_to_other_code_stays_open(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that hands its writer on and returns leaves the stream open."""
    listeners: list[SSEWriter] = []

    def register(writer: SSEWriter) -> None:
        listeners.append(writer)

    server = serve(stream_app(register, ping=0))
    with caplog.at_level(logging.WARNING, logger="gsse"):
        with RawStream(server.port) as stream:
            assert wait_until(lambda: len(listeners) == 1)
            gevent.sleep(0.2)
            listeners[0].send_event("later")
            listeners[0].close()
            assert b"later" in stream.read_to_end()
    assert "returned without closing" not in caplog.text


def test_a_channel_subscription_is_not_a_dropped_writer(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker subscription, whose callback returns at once, stays open and quiet."""
    broker = MemoryBroker()
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse(ping=0)
        event.subscribe(broker, "news")

    server = serve(app)
    first = broker.publish("news", "zero")
    broker.publish("news", "hi")
    with caplog.at_level(logging.WARNING, logger="gsse"):
        headers = {"Last-Event-ID": first}
        with RawStream(server.port, headers=headers) as stream:
            assert b"hi" in stream.read_until(b"data: hi")  # replayed
            gevent.sleep(0.1)  # the subscriber callback has long returned
            assert not stream.ended
    assert "returned without closing" not in caplog.text


def test_streaming_without_the_middleware_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A host with no SSEMiddleware streams, and one warning says what is missing."""
    from flask import Flask

    # The module, not the function gsse.stream that hides it.
    monkeypatch.setattr(
        importlib.import_module("gsse.hosts"), "_warned_no_middleware", False
    )
    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> Any:
        return gsse.stream(lambda writer: writer.close())

    server = WSGIServer(("127.0.0.1", 0), flask_app, log=None)
    server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gsse"):
            for _ in range(3):
                with RawStream(server.server_port) as stream:
                    assert stream.status == 200
                    stream.read_to_end()
    finally:
        server.stop(timeout=1)
    warnings = [r for r in caplog.records if "without gsse.SSEMiddleware" in r.message]
    assert len(warnings) == 1
    assert "SIGTERM" in warnings[0].message
    assert "app = gsse.SSEMiddleware(app)" in warnings[0].message


def test_streaming_with_the_middleware_or_the_server_does_not_warn(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under SSEMiddleware on pywsgi, or the gsse server alone, nothing is missing."""
    from flask import Flask

    # The module, not the function gsse.stream that hides it.
    monkeypatch.setattr(
        importlib.import_module("gsse.hosts"), "_warned_no_middleware", False
    )
    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> Any:
        return gsse.stream(lambda writer: writer.close())

    wrapped = gsse.SSEMiddleware(flask_app)
    server = WSGIServer(("127.0.0.1", 0), wrapped, log=None)
    server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gsse"):
            for port in (server.server_port, serve(flask_app).port):
                with RawStream(port) as stream:
                    stream.read_to_end()
    finally:
        server.stop(timeout=1)
    assert "without gsse.SSEMiddleware" not in caplog.text


def test_gunicorn_without_the_middleware_warns_once(tmp_path: Path) -> None:
    """``gunicorn -k gevent`` on a bare Flask app streams and warns once."""
    with processes(tmp_path) as procs:
        port = free_port()
        proc = procs.start(
            [sys.executable, "-m", "gunicorn", "-k", "gevent", "--bind",
             f"127.0.0.1:{port}", "tests.apps.flask_hosts:flask_app"]
        )  # fmt: skip
        proc.wait_port(port)
        for _ in range(2):
            with RawStream(port, "/count?n=2") as stream:
                assert [m.data for m in stream.events(2)] == ["0", "1"]
        proc.wait_log("without gsse.SSEMiddleware")
        proc.stop()
    assert proc.log.count("without gsse.SSEMiddleware") == 1


async def async_check(request: Any, channel: str = "") -> bool:
    return False


def _require_channels(check: Any) -> None:
    from gsse.auth import require_channels

    require_channels(_request(), ["news"], check)


def _auth_middleware(check: Any) -> None:
    from gsse.auth import AuthMiddleware

    AuthMiddleware(App(), check)


def _authorize(check: Any) -> None:
    from gsse.auth import authorize

    authorize(check)


CHECK_ENTRY_POINTS: dict[str, Callable[[Any], object]] = {
    "authorize": _authorize,
    "AuthMiddleware": _auth_middleware,
    "require_channels": _require_channels,
}


@pytest.mark.parametrize("entry", CHECK_ENTRY_POINTS, ids=list(CHECK_ENTRY_POINTS))
@pytest.mark.parametrize(
    "check",
    [async_check, functools.partial(async_check), AsyncCallable()],
    ids=["async def", "partial", "async __call__"],
)
def test_async_auth_checks_are_refused_not_taken_as_true(
    entry: str, check: Any
) -> None:
    """An async check is refused: its coroutine would be truthy and allow everyone."""
    with pytest.raises(TypeError, match="let every request in"):
        CHECK_ENTRY_POINTS[entry](check)


def test_async_handlers_are_refused_when_routed() -> None:
    """@app.route refuses an async def handler at import time, not per request."""
    app = App()

    async def events(event: Event) -> None:
        event.start_sse()

    with pytest.raises(TypeError, match="plain def"):
        app.route("/events")(events)


def generator_callback(writer: SSEWriter) -> Iterator[dict[str, str]]:
    yield {"data": "sse-starlette style"}


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=list(ENTRY_POINTS))
@pytest.mark.parametrize(
    "callback",
    [generator_callback, functools.partial(generator_callback)],
    ids=["generator function", "partial of one"],
)
def test_generator_callbacks_are_refused_where_given(entry: str, callback: Any) -> None:
    """A callback that yields (never iterated by gsse) is refused, saying to send."""
    with pytest.raises(TypeError, match="instead of yield"):
        ENTRY_POINTS[entry](callback)


@pytest.mark.parametrize(
    "callback",
    [
        lambda writer: async_callback(writer),
        lambda writer: generator_callback(writer),
        lambda writer: async_generator(writer),
    ],
    ids=["coroutine", "generator", "async generator"],
)
def test_a_callback_returning_a_coroutine_ends_its_stream_with_an_error(
    serve: Serve, caplog: pytest.LogCaptureFixture, callback: Any
) -> None:
    """A lambda hiding an async function: the stream ends and an error says why."""
    server = serve(stream_app(callback))
    with caplog.at_level(logging.ERROR, logger="gsse"):
        with RawStream(server.port) as stream:
            stream.read_to_end()
            assert stream.ended
        assert wait_until(lambda: "which nothing awaits or iterates" in caplog.text)


def test_callbacks_made_per_request_are_checked_every_time() -> None:
    """A closure that passed is taken again at once; a generator closure made
    at the same place as none before is still refused, every time."""

    def plain_factory() -> Any:
        def callback(writer: Any) -> None:
            writer.send_event("x")

        return callback

    def generator_factory() -> Any:
        def callback(writer: Any) -> Any:
            yield "x"

        return callback

    for _ in range(3):
        check_callback(plain_factory())
        with pytest.raises(TypeError, match="generator function"):
            check_callback(generator_factory())
