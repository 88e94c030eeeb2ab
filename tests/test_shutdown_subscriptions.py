"""A graceful shutdown ends channel subscriptions at once: nothing to finish."""

from __future__ import annotations

from collections.abc import Callable

import gevent

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter

from .helpers import RawStream


def channel_app(broker: gsse.Broker) -> App:
    """/sub follows a channel; /hello greets first; /thread does so in a thread."""
    app = App()

    @app.route("/sub")
    def sub(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, "news")

    def hello_then_follow(writer: SSEWriter) -> None:
        writer.send_event("hello", event="hello")
        broker.subscriber("news")(writer)

    @app.route("/hello")
    def hello(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(hello_then_follow)

    @app.route("/thread")
    def thread(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(hello_then_follow, blocking=True)

    return app


def test_shutdown_ends_subscriptions_without_the_grace_period(
    serve: Callable[..., Server],
) -> None:
    """With a 60 s grace, subscribed streams end cleanly, none by the deadline."""
    broker = gsse.Broker.from_url("memory://")
    server = serve(channel_app(broker), ping=0, graceful_timeout=60)
    streams = [RawStream(server.port, path) for path in ("/sub", "/hello", "/thread")]
    try:
        for stream in streams[1:]:
            assert [m.data for m in stream.events(1, timeout=10)] == ["hello"]
        broker.publish("news", "first")
        for stream in streams:
            assert [m.data for m in stream.events(1, timeout=10)] == ["first"]
        stopping = gevent.spawn(server.stop)
        for stream in streams:
            stream.read_to_end(30)
            assert stream.ended and not stream.cut
        # stop() counts the streams the grace deadline had to close: none.
        assert stopping.get(timeout=30) == 0
    finally:
        for stream in streams:
            stream.close()
