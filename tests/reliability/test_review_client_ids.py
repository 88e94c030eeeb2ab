"""gsse.client resumes after ids a server may send with whitespace around them.

``id:  7`` gives the id `` 7`` (one space is the field's separator); HTTP
servers trim whitespace around a header value, so a browser's resume sends
what the server reads as ``7``. The client sent the id raw, requests refused
the header, and the client retried forever without reaching the server.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.client import EventSource
from gsse.client import EventSourceError

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)


def one_event_app(event_id: str, seen: list[str | None]) -> App:
    """Sends one event with ``event_id``, then ends the stream; notes each resume."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        seen.append(event.last_event_id)
        event.start_sse(retry=10)

        def send(writer: SSEWriter) -> None:
            writer.send_event(f"n{len(seen)}", id=event_id)
            writer.close()

        event.set_stream_callback(send)

    return app


@pytest.mark.parametrize(
    ("event_id", "resumed_with"),
    [
        (" 7", "7"),
        ("  7", "7"),
        ("\t7", "7"),
        ("7 ", "7"),
        (" \t7\t ", "7"),
        (" caf\u00e9", "caf\u00e9"),
        (" ", None),
        ("\t", None),
    ],
)
def test_the_client_resumes_after_an_id_with_whitespace_around_it(
    serve: Serve, event_id: str, resumed_with: str | None
) -> None:
    """The reconnection reaches the server with the id as HTTP reads it."""
    seen: list[str | None] = []
    server = serve(one_event_app(event_id, seen))
    with (
        gevent.Timeout(20),
        EventSource(f"http://127.0.0.1:{server.port}/events", timeout=5) as source,
    ):
        messages = iter(source)
        assert next(messages).data == "n1"
        assert next(messages).data == "n2"
    assert seen[:2] == [None, resumed_with]


def test_an_id_that_cannot_be_sent_ends_the_client_with_a_clear_error(
    serve: Serve,
) -> None:
    """An id HTTP cannot carry (leading vertical tab) is an error, not a retry loop."""
    seen: list[str | None] = []
    server = serve(one_event_app("\x0b7", seen))
    with (
        gevent.Timeout(20),
        EventSource(f"http://127.0.0.1:{server.port}/events", timeout=5) as source,
    ):
        messages = iter(source)
        assert next(messages).data == "n1"
        with pytest.raises(EventSourceError, match="cannot send the request"):
            next(messages)
    assert seen == [None]
