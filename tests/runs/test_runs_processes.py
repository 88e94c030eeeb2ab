"""Runs across processes: two `gsse run` on one real Redis.

A follower in another process, a cancel from another process, and a
producer process that is SIGKILLed mid-run: its followers elsewhere are
told ``interrupted`` once its lease (5 s) runs out.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers import RawStream
from tests.procs import Processes
from tests.procs import ServerProcess
from tests.procs import free_port
from tests.procs import processes
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)
from tests.runs.conftest import info
from tests.runs.conftest import post
from tests.runs.conftest import start_run

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


def start_server(procs: Processes, url: str) -> tuple[ServerProcess, int]:
    port = free_port()
    process = procs.gsse(
        "run", "tests.apps.runs_app:app", "--port", str(port), "--broker", url
    )
    return process, process.wait_port(port, timeout=30)


def read_to_end(stream: RawStream) -> list[tuple[str, str]]:
    stream.read_to_end(60)
    assert stream.ended
    return [(m.event, m.data) for m in stream.decoder.feed(stream.body)]


def test_a_follower_in_another_process_gets_the_whole_run(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Started on A, followed on B (live, resumed, and after the end); 204 on B."""
    with processes(tmp_path) as procs:
        (_, a), (_, b) = (
            start_server(procs, redis_server.url),
            start_server(procs, redis_server.url),
        )
        run_id = start_run(a, n=40, delay=0.02)
        with RawStream(b, f"/runs/{run_id}", timeout=30) as stream:
            assert stream.status == 200
            first = stream.events(5, timeout=30)
        resumed_from = first[-1].id
        with RawStream(
            b, f"/runs/{run_id}", headers={"Last-Event-ID": resumed_from}, timeout=30
        ) as stream:
            rest = read_to_end(stream)
        got = [json.loads(m.data)["i"] for m in first] + [
            json.loads(data)["i"] for event, data in rest if event == "token"
        ]
        assert got == list(range(40))
        assert rest[-1] == ("end", '{"status":"done"}')
        found = info(b, run_id)
        assert found is not None
        assert (found["status"], found["events"]) == ("done", 40)
        with RawStream(b, f"/runs/{run_id}", timeout=30) as stream:
            assert len(read_to_end(stream)) == 41
        end_id = found["end_id"]
        headers = {"Last-Event-ID": end_id, "Connection": "close"}
        with RawStream(b, f"/runs/{run_id}", headers=headers) as stream:
            assert stream.status == 204


@pytest.mark.parametrize("kind", ["forever", "blocking"])
def test_cancel_from_another_process(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    kind: str,
) -> None:
    """Cancelled on B, the producer on A (greenlet or pool thread) stops."""
    with processes(tmp_path) as procs:
        (_, a), (_, b) = (
            start_server(procs, redis_server.url),
            start_server(procs, redis_server.url),
        )
        run_id = start_run(a, kind=kind, delay=0.02)
        with RawStream(a, f"/runs/{run_id}", timeout=30) as stream:
            stream.events(2, timeout=30)
            assert post(b, f"/cancel/{run_id}") == {"cancelled": True}
            messages = read_to_end(stream)
        assert messages[-1] == ("end", '{"status":"cancelled"}')
        found = info(b, run_id)
        assert found is not None and found["status"] == "cancelled"


def test_a_killed_producer_process_leaves_an_interrupted_run(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """SIGKILL A mid-run: B's follower gets end interrupted, exactly once."""
    with processes(tmp_path) as procs:
        (producer, a), (_, b) = (
            start_server(procs, redis_server.url),
            start_server(procs, redis_server.url),
        )
        run_id = start_run(a, kind="forever", delay=0.02)
        with RawStream(b, f"/runs/{run_id}", timeout=60) as stream:
            stream.events(3, timeout=30)
            producer.send(signal.SIGKILL)
            producer.wait(30)
            messages = read_to_end(stream)
        assert messages[-1] == ("end", '{"status":"interrupted"}')
        assert [event for event, _ in messages].count("end") == 1
        found = info(b, run_id)
        assert found is not None and found["status"] == "interrupted"
        with RawStream(b, f"/runs/{run_id}", timeout=30) as stream:
            again = read_to_end(stream)
        assert [event for event, _ in again].count("end") == 1
