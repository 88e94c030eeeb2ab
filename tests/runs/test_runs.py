"""The runs contract (API.md §9) over real sockets, on memory:// and redis://.

Followers get everything then ``end``, resume exactly once from any point,
get ``204`` after the end and ``404`` for unknown runs; errors, cancels
(greenlet and pool thread), bounds, expiry and shutdown end runs with the
documented status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import gevent
import pytest

import gsse
from gsse import Server
from gsse.runs import RunLimitExceeded
from gsse.runs import RunWriter
from tests.apps.runs_app import make_app
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)
from tests.runs.conftest import MakeBroker
from tests.runs.conftest import info
from tests.runs.conftest import post
from tests.runs.conftest import start_run

pytestmark = pytest.mark.timeout(120)


def follow_to_end(
    port: int, run_id: str, last_event_id: str | None = None, path: str = "/runs"
) -> list[tuple[str, str, str]]:
    """Follow the run until the server ends the stream: (event, id, data) each."""
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    with RawStream(port, f"{path}/{run_id}", headers=headers, timeout=30) as stream:
        assert stream.status == 200
        stream.read_to_end(60)
        assert stream.ended  # a clean end of the chunked body, not a cut
        messages = stream.decoder.feed(stream.body)
    return [(m.event, m.id, m.data) for m in messages]


def tokens(messages: list[tuple[str, str, str]]) -> list[int]:
    return [json.loads(data)["i"] for event, _, data in messages if event == "token"]


@pytest.mark.parametrize("path", ["/runs", "/wsgi"])
def test_a_follower_gets_every_event_then_end(port: int, path: str) -> None:
    """Live from the start, or after the run ended: all events, then end done."""
    run_id = start_run(port, n=30, delay=0.005)
    live = follow_to_end(port, run_id, path=path)
    late = follow_to_end(port, run_id, path=path)
    for messages in (live, late):
        assert tokens(messages) == list(range(30))
        assert messages[-1][0] == "end"
        assert json.loads(messages[-1][2]) == {"status": "done"}
        assert [m[0] for m in messages].count("end") == 1
    assert live == late


def test_a_follower_that_reconnects_after_every_event_gets_each_once(
    port: int,
) -> None:
    """Disconnect after each event and resume with Last-Event-ID: no gap, no twin."""
    run_id = start_run(port, n=25, delay=0.01)
    seen: list[tuple[str, str, str]] = []
    last_id: str | None = None
    for _ in range(200):
        headers = {} if last_id is None else {"Last-Event-ID": last_id}
        with RawStream(port, f"/runs/{run_id}", headers=headers, timeout=30) as s:
            if s.status == 204:
                break
            assert s.status == 200
            message = s.events(1, timeout=30)[0]
        seen.append((message.event, message.id, message.data))
        last_id = message.id
    else:
        pytest.fail("the run never ended")
    assert tokens(seen) == list(range(25))
    assert [event for event, _, _ in seen] == ["token"] * 25 + ["end"]
    assert len({event_id for _, event_id, _ in seen}) == 26


def test_a_follower_resuming_from_any_point_after_the_end_gets_the_rest(
    port: int,
) -> None:
    """Every id of a finished run resumes to exactly the events after it."""
    run_id = start_run(port, n=12, delay=0.001)
    whole = follow_to_end(port, run_id)
    for i, (_, event_id, _) in enumerate(whole[:-1]):
        assert follow_to_end(port, run_id, last_event_id=event_id) == whole[i + 1 :]


def test_a_reconnect_with_the_end_id_gets_204(port: int) -> None:
    """The browser's automatic reconnect after ``end`` is told to stop."""
    run_id = start_run(port, n=3, delay=0.001)
    end_id = follow_to_end(port, run_id)[-1][1]
    for path in ("/runs", "/wsgi"):
        headers = {"Last-Event-ID": end_id, "Connection": "close"}
        with RawStream(port, f"{path}/{run_id}", headers=headers) as stream:
            assert stream.status == 204


@pytest.mark.parametrize(
    "run_id",
    ["AAAAAAAAAAAAAAAAAAAAAA", "nope", "a" * 100, "bad%0Aid%00with-controls-xx"],
)
def test_an_unknown_run_gets_404(port: int, run_id: str) -> None:
    for path in ("/runs", "/wsgi"):
        status, body = http_get(port, f"{path}/{run_id}")
        assert status == 404
        assert b"unknown or expired run" in body


def test_a_producer_that_raises_ends_with_error_and_its_traceback_is_logged(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Followers get ``error``, never the exception's text; the log has it."""
    caplog.set_level(logging.ERROR, logger="gsse.runs")
    run_id = start_run(port, kind="fail")
    messages = follow_to_end(port, run_id)
    assert tokens(messages) == [0, 1]
    assert json.loads(messages[-1][2]) == {"status": "error"}
    assert "secret-detail" not in json.dumps(messages)
    assert "secret-detail-of-the-failure" in caplog.text
    assert "Traceback" in caplog.text
    found = info(port, run_id)
    assert found is not None and found["status"] == "error"


@pytest.mark.parametrize("kind", ["forever", "blocking"])
def test_cancel_ends_the_run_as_cancelled(port: int, kind: str) -> None:
    """A greenlet producer and a pool-thread producer both see ``cancelled``."""
    run_id = start_run(port, kind=kind, delay=0.02)
    with RawStream(port, f"/runs/{run_id}", timeout=30) as stream:
        assert stream.status == 200
        stream.events(3, timeout=30)
        assert post(port, f"/cancel/{run_id}") == {"cancelled": True}
        stream.read_to_end(30)
        messages = stream.decoder.feed(stream.body)
    assert messages[-1].event == "end"
    assert json.loads(messages[-1].data) == {"status": "cancelled"}
    found = info(port, run_id)
    assert found is not None and found["status"] == "cancelled"
    assert post(port, f"/cancel/{run_id}") == {"cancelled": False}


def test_get_reports_status_times_and_count(port: int, runs: gsse.Runs) -> None:
    run_id = start_run(port, kind="forever", delay=0.01)
    running = runs.get(run_id)
    assert running is not None and running.status == "running"
    assert running.ended is None
    assert runs.cancel(run_id)
    # The status is set first, the end event's id once it is published.
    assert wait_until(lambda: runs.get(run_id).end_id is not None, 30)  # type: ignore[union-attr]
    done = runs.get(run_id)
    assert done is not None and done.status == "cancelled"
    assert done is not None and done.ended is not None
    assert done.started <= done.ended
    messages = follow_to_end(port, run_id)
    assert done.events == len(tokens(messages)) > 0
    assert done.end_id == messages[-1][1]
    assert runs.get("unknown-unknown-unknown") is None
    assert runs.get(None) is None  # type: ignore[arg-type]


def test_a_run_past_its_bounds_gets_a_clear_error(
    serve: Callable[..., Server],
    make_broker: MakeBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """max_events and max_bytes: the producer's send raises RunLimitExceeded."""
    runs = gsse.Runs(make_broker(history=3), max_events=5, max_bytes=10_000)
    raised: list[BaseException] = []

    def chatty(writer: RunWriter, size: int) -> None:
        try:
            for _ in range(10):
                writer.send_event("x" * size, event="token")
        except RunLimitExceeded as exc:
            raised.append(exc)
            raise

    port = serve(make_app(runs)).port
    for size, sent in ((1, 5), (3000, 3)):
        run = runs.start(chatty, size)
        messages = follow_to_end(port, run.id)
        # history=3 on the broker does not cut a run short: all are replayed.
        assert [m[0] for m in messages] == ["token"] * sent + ["end"]
        assert json.loads(messages[-1][2]) == {"status": "error"}
    assert "max_events=5" in str(raised[0]) and "max_bytes=10000" in str(raised[1])


def test_a_finished_run_expires_after_ttl(
    serve: Callable[..., Server], make_broker: MakeBroker
) -> None:
    runs = gsse.Runs(make_broker(), ttl=0.5)
    port = serve(make_app(runs)).port
    run_id = start_run(port, n=2, delay=0.001)
    assert tokens(follow_to_end(port, run_id)) == [0, 1]
    assert wait_until(lambda: runs.get(run_id) is None, 30, interval=0.1)
    assert http_get(port, f"/runs/{run_id}")[0] == 404


def test_a_run_still_going_after_the_graceful_timeout_ends_interrupted(
    serve: Callable[..., Server], make_broker: MakeBroker
) -> None:
    """Shutdown waits for runs like streams, then ends the rest as interrupted."""
    runs = gsse.Runs(make_broker())
    server = serve(make_app(runs))
    polite = start_run(server.port, kind="count", n=3, delay=0.3)
    stubborn = start_run(server.port, kind="forever", delay=0.01)
    with RawStream(server.port, f"/runs/{stubborn}", timeout=30) as stream:
        stream.events(1, timeout=30)
        server.stop(graceful_timeout=1.5)
        stream.read_to_end(30)  # a follower has nothing to finish: ended at once
    assert runs.get(polite).status == "done"  # type: ignore[union-attr]
    assert runs.get(stubborn).status == "interrupted"  # type: ignore[union-attr]
    # Followers who come back (here: to another server) are told so.
    again = serve(make_app(runs)).port
    messages = follow_to_end(again, stubborn)
    assert len(tokens(messages)) >= 1
    assert json.loads(messages[-1][2]) == {"status": "interrupted"}
    assert json.loads(follow_to_end(again, polite)[-1][2]) == {"status": "done"}


def test_bad_arguments_say_what_to_fix(make_broker: MakeBroker) -> None:
    broker = make_broker()
    with pytest.raises(TypeError, match="gsse.Broker"):
        gsse.Runs("memory://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        gsse.Runs(broker, ttl=0)
    with pytest.raises(ValueError, match="max_events"):
        gsse.Runs(broker, max_events=0)
    runs = gsse.Runs(broker)
    with pytest.raises(TypeError):
        runs.start("not callable")  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def misuse(writer: RunWriter) -> None:
        for call in (
            lambda: writer.send_event("x", id="1"),
            lambda: writer.send_event("x", retry=10),
            lambda: writer.send_event("x", event="end"),
            lambda: writer.send_event(None),
        ):
            try:
                call()
            except ValueError as exc:
                errors.append(exc)

    run = runs.start(misuse)
    assert wait_until(lambda: runs.get(run.id).status == "done", 30)  # type: ignore[union-attr]
    assert len(errors) == 4
    assert "id=" in str(errors[0]) and "final event" in str(errors[2])
    gevent.sleep(0)


@pytest.mark.redis
def test_a_follower_gets_503_while_redis_is_away(
    serve: Callable[..., Server],
    redis_server: RedisServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No traceback, no 500: the client is told to retry (Retry-After)."""
    runs = gsse.Runs(gsse.Broker.from_url(redis_server.url))
    port = serve(make_app(runs)).port
    run_id = start_run(port, n=2, delay=0.001)
    assert tokens(follow_to_end(port, run_id)) == [0, 1]
    redis_server.kill()
    headers = {"Connection": "close"}
    with RawStream(port, f"/runs/{run_id}", headers=headers, timeout=30) as stream:
        assert stream.status == 503
        assert stream.headers["retry-after"] == "2"
    assert "Traceback" not in caplog.text
    runs.broker.close()
