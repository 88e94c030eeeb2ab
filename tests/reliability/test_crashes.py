"""Callbacks that raise, hang or block the loop are contained, logged and counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import pytest
from gevent.monkey import get_original

from gsse import Server
from gsse import SSEWriter
from gsse.watchdog import Watchdog
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.reliability.support import counter
from tests.reliability.support import stream_app

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(30)

real_sleep = get_original("time", "sleep")


def test_a_raising_callback_is_logged_once_with_context_and_counted(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The traceback is logged once with the stream's id and path; others go on."""

    def broken(writer: SSEWriter) -> None:
        writer.send_event("before")
        raise RuntimeError("boom")

    server = serve(stream_app(broken))
    before = counter("callback_errors")
    caplog.set_level(logging.INFO)
    with RawStream(server.port) as stream:
        body = stream.read_to_end(timeout=5)
        assert b"data: before" in body
        assert stream.ended and not stream.cut
    records = [r for r in caplog.records if "raised" in r.getMessage()]
    assert len(records) == 1
    record = records[0]
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])
    assert record.path == "/events"  # type: ignore[attr-defined]
    assert f"stream {record.stream_id} /events" in record.getMessage()  # type: ignore[attr-defined]
    assert counter("callback_errors") == before + 1
    assert http_get(server.port) == (200, b"ok")


def test_a_callback_that_never_returns_does_not_hold_the_server(serve: Serve) -> None:
    """A hung callback keeps its greenlet, but its stream and the server move on."""
    release: list[int] = []

    def forever(writer: SSEWriter) -> None:
        writer.send_event("hi")
        # Never looks at writer.closed; ``release`` only ends it after the test.
        while not release:
            time.sleep(0.05)

    server = serve(stream_app(forever, ping=0.1))
    with RawStream(server.port) as stream:
        stream.read_until(b"hi")
        # Keep-alive still flows while the callback is stuck in its loop.
        stream.read_until(b": ping", timeout=5)
    # The client left: the stream is gone, whatever the callback does.
    assert wait_until(lambda: len(server.registry) == 0, timeout=5)
    assert http_get(server.port) == (200, b"ok")
    try:
        # The callback ends only after stop() returns: stop() must not wait.
        with gevent.Timeout(60, AssertionError("stop() waited for the callback")):
            server.stop(graceful_timeout=0.2)
    finally:
        release.append(1)


def test_a_callback_blocking_the_loop_is_logged_with_its_stack(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The watchdog logs one warning naming the blocking function, and counts it."""
    done: list[int] = []

    def blocks_by_mistake(writer: SSEWriter) -> None:
        writer.send_event("start")
        real_sleep(1.0)  # an unpatched sleep: every stream stalls
        writer.send_event("end")
        done.append(1)

    server = serve(stream_app(blocks_by_mistake), max_blocking_time=0.25)
    before = counter("loop_blocks")
    caplog.set_level(logging.WARNING, logger="gsse.watchdog")
    with RawStream(server.port) as stream:
        stream.read_until(b"end", timeout=10)
    assert wait_until(lambda: counter("loop_blocks") > before, timeout=5)
    gevent.sleep(0.2)
    records = [r for r in caplog.records if "blocked" in r.getMessage()]
    # One warning names the callback. (A loaded machine can starve the whole
    # process past 0.25 s too: such a stall is counted and logged on its own.)
    mine = [r for r in records if "blocks_by_mistake" in r.getMessage()]
    assert len(mine) == 1, [r.getMessage()[:80] for r in records]
    assert counter("loop_blocks") == before + len(records)
    assert http_get(server.port) == (200, b"ok")


def test_the_watchdog_is_quiet_while_the_loop_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cooperative sleeps never count as blocking."""
    # Sleeps for 2.5 times the threshold; the threshold leaves a loaded
    # machine room to starve the process for a moment without a false alarm.
    watchdog = Watchdog(1.0)
    before = counter("loop_blocks")
    caplog.set_level(logging.WARNING, logger="gsse.watchdog")
    watchdog.start()
    try:
        for _ in range(50):
            gevent.sleep(0.05)
    finally:
        watchdog.stop()
    assert counter("loop_blocks") == before
    assert not caplog.records


@pytest.mark.parametrize("threshold", [0, -1, "1"])
def test_a_bad_watchdog_threshold_is_rejected(threshold: object) -> None:
    """The threshold must be a positive number of seconds."""
    with pytest.raises((TypeError, ValueError), match="max_blocking_time"):
        Watchdog(threshold)  # type: ignore[arg-type]
