"""Why a stream ended: one CloseReason per way, produced over real sockets.

Each test makes a stream end one way, then checks that the metrics count it
under that member (``STATS.closes``, ``gsse_closed_streams_total{reason}``,
and the coarser ``gsse_disconnects_total{cause}``) and that the access line
written when the stream ends gives the member's text.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from collections.abc import Iterator

import gevent
import pytest

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.exceptions import CloseReason
from gsse.metrics import STATS
from gsse.metrics import cause_of
from gsse.transport import socket_transport
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import stream_app
from tests.helpers import wait_until

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

LINE = re.compile(r'"GET (\S+) HTTP/1\.1" 200 \d+ \d+\.\d+ \((.+)\)$')


@pytest.fixture(autouse=True)
def access_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO, logger="gsse.access")
    yield


def ends(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """Path -> why its stream ended, from the access lines so far."""
    lines = [r.getMessage() for r in caplog.records if r.name == "gsse.access"]
    return {m.group(1): m.group(2) for line in lines if (m := LINE.search(line))}


class Counted:
    """How many streams ended for ``reason`` since this was made."""

    def __init__(self, reason: CloseReason) -> None:
        self.reason = reason
        self.closes = STATS.closes.get(reason, 0)
        self.cause = STATS.disconnects.get(reason.cause, 0)

    def grew(self) -> bool:
        return (
            STATS.closes.get(self.reason, 0) > self.closes
            and STATS.disconnects.get(self.reason.cause, 0) > self.cause
        )


def assert_ended(
    caplog: pytest.LogCaptureFixture,
    counted: Counted,
    path: str = "/events",
    detail: str | None = "",
) -> None:
    """The stream at ``path`` ended for ``counted.reason``, counted and logged.

    :param detail: the detail the line must show; ``None``: any, or none.
    """
    reason = counted.reason
    assert wait_until(counted.grew), f"{reason!r} was not counted"
    assert wait_until(lambda: path in ends(caplog)), f"no access line for {path}"
    text = ends(caplog)[path]
    if detail is None:
        assert text == reason.text or text.startswith(f"{reason.text}: "), text
    else:
        assert text == reason.describe(detail)


def test_the_app_closing_its_stream_is_closed_by_app(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Leaving ``with writer:`` ends the stream as CLOSED_BY_APP."""

    def one(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("one")

    counted = Counted(CloseReason.CLOSED_BY_APP)
    server = serve(stream_app(one))
    with RawStream(server.port) as stream:
        stream.read_to_end()
        assert stream.ended
    assert_ended(caplog, counted)
    assert ends(caplog)["/events"] == "closed by the server"  # as before the enum


@pytest.mark.parametrize(
    ("callback", "detail"),
    [
        (lambda writer: 1 / 0, "ZeroDivisionError"),
        (lambda writer: {}["missing"], "KeyError"),
        (lambda writer: (x for x in ()), "it returned generator"),
    ],
    ids=["zero-division", "key-error", "returned-a-generator"],
)
def test_a_failing_callback_is_callback_failed(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    callback: Callable[[SSEWriter], object],
    detail: str,
) -> None:
    """A callback that raises (or returns a generator) ends as CALLBACK_FAILED."""
    counted = Counted(CloseReason.CALLBACK_FAILED)
    server = serve(stream_app(callback))
    with RawStream(server.port) as stream:
        stream.read_to_end()
        assert stream.ended  # closed with correct framing
    assert_ended(caplog, counted, detail=detail)
    assert http_get(server.port) == (200, b"ok")


def test_a_client_that_hangs_up_is_client_gone(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes its connection ends the stream as CLIENT_GONE."""

    def forever(writer: SSEWriter) -> None:
        writer.send_event("hello")
        while not writer.closed:
            gevent.sleep(0.01)

    counted = Counted(CloseReason.CLIENT_GONE)
    server = serve(stream_app(forever))
    with RawStream(server.port) as stream:
        stream.events(1)
    assert_ended(caplog, counted, detail=None)


def test_a_write_to_a_client_gone_is_send_failed(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write refused by the kernel (the client is gone) ends as SEND_FAILED."""
    # The client half-closes first, so the server stops watching reads and
    # only a write can find it gone; the probe is put off so it cannot.
    monkeypatch.setattr(socket_transport, "PROBE_DELAY", 600.0)
    monkeypatch.setattr(socket_transport, "PROBE_INTERVAL", 600.0)

    def forever(writer: SSEWriter) -> None:
        writer.send_event("hello")
        while not writer.closed:
            writer.comment("tick")
            gevent.sleep(0.01)

    counted = Counted(CloseReason.SEND_FAILED)
    server = serve(stream_app(forever))
    stream = RawStream(server.port)
    stream.events(1)
    stream.sock.shutdown(socket.SHUT_WR)
    stream.read_until(b": ping")  # the server saw the end of file
    stream.close()
    assert_ended(caplog, counted, detail=None)
    assert ends(caplog)["/events"] != CloseReason.SEND_FAILED.text  # says why


def test_a_client_that_stops_reading_is_send_timeout(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that reads nothing for send_timeout ends as SEND_TIMEOUT."""

    def flood(writer: SSEWriter) -> None:
        big = "x" * 65536
        for _ in range(2000):
            writer.send_event(big)

    counted = Counted(CloseReason.SEND_TIMEOUT)
    server = serve(stream_app(flood, send_timeout=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_ended(caplog, counted)
        assert ends(caplog)["/events"] == "send timeout: the client stopped reading"
    finally:
        sock.close()


def test_a_subscriber_that_falls_behind_is_overflow(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A channel subscriber that never reads ends as OVERFLOW, others go on."""
    broker = gsse.Broker.from_url("memory://", history=5)
    server = serve(make_app(broker))
    counted = Counted(CloseReason.OVERFLOW)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        slow.connect(("127.0.0.1", server.port))
        slow.sendall(b"GET /sub?channel=big HTTP/1.1\r\nHost: x\r\n\r\n")
        path = "/sub?channel=big"
        for i in range(3000):
            broker.publish("big", "x" * 20_000)
            if path in ends(caplog):
                break
            if i % 10 == 0:
                gevent.sleep(0.001)
        assert_ended(caplog, counted, path, detail="the client reads too slowly")
    finally:
        slow.close()


def shutdown_app() -> App:
    """``/polite`` ends when told the server stops; ``/stubborn`` never does."""
    app = App()

    def polite(writer: SSEWriter) -> None:
        with writer:
            while not writer.shutting_down:
                gevent.sleep(0.01)
            writer.send_event("bye")

    def stubborn(writer: SSEWriter) -> None:
        writer.send_event("still here")
        while not writer.closed:
            gevent.sleep(0.01)

    for name, callback in (("polite", polite), ("stubborn", stubborn)):

        def view(
            event: Event, callback: Callable[[SSEWriter], None] = callback
        ) -> None:
            event.start_sse()
            event.set_stream_callback(callback)

        app.route(f"/{name}", endpoint=name)(view)
    return app


def test_a_graceful_shutdown_gives_each_stream_its_reason(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop: a subscription is SHUTDOWN, a stream that says goodbye is
    CLOSED_BY_APP, and one still open after the grace is SHUTDOWN_DEADLINE."""
    broker = gsse.Broker.from_url("memory://")
    app = shutdown_app()
    channels = make_app(broker)
    counts = {r: Counted(r) for r in CloseReason}
    server = serve(
        lambda environ, start_response: (
            channels if environ["PATH_INFO"] == "/sub" else app
        )(environ, start_response)
    )
    streams = [
        RawStream(server.port, path)
        for path in ("/sub?channel=c", "/polite", "/stubborn")
    ]
    try:
        assert wait_until(lambda: len(server.registry) == 3)
        streams[2].events(1)
        assert server.stop(graceful_timeout=1.0) == 1
        assert_ended(caplog, counts[CloseReason.SHUTDOWN], "/sub?channel=c")
        assert_ended(caplog, counts[CloseReason.CLOSED_BY_APP], "/polite")
        assert_ended(caplog, counts[CloseReason.SHUTDOWN_DEADLINE], "/stubborn")
        for stream in streams:
            stream.read_to_end()
            assert stream.ended  # every one with correct framing
    finally:
        for stream in streams:
            stream.close()


def test_every_reason_has_a_cause_a_text_and_a_readable_str() -> None:
    """Members are str-valued labels, print their text, and map to a cause."""
    causes = {"client", "server", "send_timeout", "overflow", "other"}
    for reason in CloseReason:
        assert isinstance(reason, str) and reason == reason.value
        assert re.fullmatch(r"[a-z_]+", reason.value)
        assert str(reason) == f"{reason}" == reason.text != ""
        assert reason.describe("x") == f"{reason.text}: x"
        assert cause_of(reason) == cause_of(reason.value) == reason.cause in causes
    assert cause_of("no such reason") == "other"


def test_free_text_from_outside_code_is_counted_as_other() -> None:
    """A stream aborted with a plain string is OTHER, the text its detail."""
    from gsse.settings import StreamSettings
    from gsse.streams import Stream
    from gsse.transport import QueueTransport

    counted = Counted(CloseReason.OTHER)
    stream = Stream(QueueTransport(), StreamSettings().resolved())
    stream.abort("the backend went away")
    assert stream.close_reason is CloseReason.OTHER
    assert stream.close_text == "closed: the backend went away"
    assert counted.grew()


def test_the_reasons_are_scraped_by_label(serve: Serve) -> None:
    """gsse_closed_streams_total has one series per reason, and counts them."""
    prometheus_client = pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, float]:
        status, body = http_get(server.port, "/metrics")
        assert status == 200
        return {
            sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == "gsse_closed_streams_total"
        }

    assert prometheus_client is not None
    server = serve(stream_app(lambda writer: 1 / 0), metrics_path="/metrics")
    before = scrape()
    assert set(before) == {reason.value for reason in CloseReason}
    with RawStream(server.port) as stream:
        stream.read_to_end()
    assert wait_until(
        lambda: scrape()["callback_failed"] == before["callback_failed"] + 1
    )
