"""Scale-out on Redis: two `gsse run` processes, a plain publishing script."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import pytest
import requests

from tests.helpers import RawStream
from tests.procs import REPO
from tests.procs import Processes
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import processes
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

SUB = "/sub?" + urllib.parse.urlencode({"channel": "shared"})

#: A publisher with no gevent and no server: what a cron job or worker runs.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import gsse
    assert "gevent.monkey" not in sys.modules or not __import__(
        "gevent.monkey").monkey.is_module_patched("socket")
    broker = gsse.Broker.from_url(sys.argv[1])
    ids = [broker.publish("shared", f"script {i}", event="note") for i in range(5)]
    print(json.dumps(ids))
    """
)


def publish_from_script(url: str) -> list[str]:
    """Run SCRIPT in a fresh interpreter; return the ids it published."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    ids: list[str] = json.loads(done.stdout)
    return ids


def start_server(procs: Processes, url: str) -> int:
    port = free_port()
    process = procs.gsse(
        "run", "tests.apps.broker_app:app", "--port", str(port), "--broker", url
    )
    return process.wait_port(port, timeout=30)


def post(port: int, data: str) -> str:
    reply = requests.post(
        f"http://127.0.0.1:{port}/publish",
        data={"channel": "shared", "data": data, "event": "note"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    new_id: str = reply.json()["id"]
    return new_id


def test_two_servers_share_channels_and_survive_a_killed_server(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Events from a script and both servers reach both; a client resumes on B."""
    url = redis_server.url
    with processes(tmp_path) as procs:
        port_a = start_server(procs, url)
        port_b = start_server(procs, url)
        process_a = procs.started[0]
        # 1. A first event, so both streams can start from a known id.
        start = post(port_a, "start")
        headers = {"Last-Event-ID": start}
        stream_a = RawStream(port_a, SUB, headers=headers, timeout=30)
        stream_b = RawStream(port_b, SUB, headers=headers, timeout=30)
        try:
            # 2. A plain script and each server publish.
            ids = publish_from_script(url)
            ids += [post(port_a, "from a"), post(port_b, "from b")]
            # 3. Both streams get everything, in order, with the same ids.
            for stream in (stream_a, stream_b):
                got = stream.events(7, timeout=30)
                assert [m.id for m in got] == ids
                assert [m.data for m in got][-2:] == ["from a", "from b"]
            # 4. Server A dies mid-stream; events keep coming through B.
            process_a.send(signal.SIGKILL)
            process_a.proc.wait(10)
            missed = [post(port_b, f"missed {i}") for i in range(3)]
            # 5. A's client resumes on B from its last id: no gap, no repeat.
            resume = {"Last-Event-ID": ids[-1]}
            with RawStream(port_b, SUB, headers=resume, timeout=30) as resumed:
                again = resumed.events(3, timeout=30)
            assert [m.id for m in again] == missed
            assert [m.id for m in stream_b.events(3, timeout=30)] == missed
        finally:
            stream_a.close()
            stream_b.close()


def test_workers_share_a_channel_through_redis(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Under --workers 2, every stream gets events published to any worker."""
    with processes(tmp_path) as procs:
        port = free_port()
        procs.gsse(
            "run",
            "tests.apps.broker_app:app",
            "--port",
            str(port),
            "--workers",
            "2",
            "--broker",
            redis_server.url,
        ).wait_port(port, timeout=30)
        start = post(port, "start")
        headers = {"Last-Event-ID": start}
        streams = [RawStream(port, SUB, headers=headers, timeout=30) for _ in range(6)]
        try:
            replies = [
                requests.post(
                    f"http://127.0.0.1:{port}/publish",
                    data={"channel": "shared", "data": f"n{i}"},
                    timeout=10,
                ).json()
                for i in range(6)
            ]
            ids = [r["id"] for r in replies]
            for stream in streams:
                assert [m.id for m in stream.events(6, timeout=30)] == ids
        finally:
            for stream in streams:
                stream.close()


def test_any_process_serves_the_snapshot_of_a_compacted_channel(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Keyed events published through one `gsse run` are snapshotted by another."""
    with processes(tmp_path) as procs:
        port_a = start_server(procs, redis_server.url)
        port_b = start_server(procs, redis_server.url)

        def keyed(data: str, key: str) -> str:
            reply = requests.post(
                f"http://127.0.0.1:{port_a}/publish",
                data={"channel": "shared", "data": data, "key": key},
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
            return str(reply.json()["id"])

        keyed("AAPL 1", "AAPL")
        msft = keyed("MSFT 1", "MSFT")
        aapl = keyed("AAPL 2", "AAPL")
        with RawStream(port_b, SUB + "&snapshot=1") as stream:
            got = stream.events(2, timeout=30)
            assert [(m.id, m.data) for m in got] == [(msft, "MSFT 1"), (aapl, "AAPL 2")]
            live = keyed("MSFT 2", "MSFT")
            assert [(m.id, m.data) for m in stream.events(1, timeout=30)] == [
                (live, "MSFT 2")
            ]
