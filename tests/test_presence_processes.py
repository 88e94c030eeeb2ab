"""Presence and delivery counts across two `gsse run` processes on one Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import requests

import gsse
from gsse import Server
from tests.apps.broker_app import make_app
from tests.helpers import RawStream
from tests.helpers import wait_until
from tests.procs import REPO
from tests.procs import Processes
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import processes
from tests.redis_server import RedisServer
from tests.redis_server import redis_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


#: A publisher with no gevent and no server: a cron job counting its reach.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import gsse
    broker = gsse.Broker.from_url(sys.argv[1])
    print(json.dumps(broker.publish("room", "from a script", return_delivery=True)))
    """
)


def publish_from_script(url: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    new_id, handed = json.loads(done.stdout)
    return new_id, handed


def start_server(procs: Processes, url: str) -> int:
    port = free_port()
    process = procs.gsse(
        "run", "tests.apps.broker_app:app", "--port", str(port), "--broker", url
    )
    return process.wait_port(port, timeout=30)


def member(port: int, user: str | None, events: bool = False) -> RawStream:
    query = [("channel", "room")]
    query += [("user", user)] if user is not None else []
    query += [("events", "1")] if events else []
    path = "/sub?" + urllib.parse.urlencode(query)
    stream = RawStream(port, path, timeout=30)
    assert stream.status == 200
    return stream


def who(port: int) -> tuple[list[str], int]:
    reply = requests.get(f"http://127.0.0.1:{port}/who?channel=room", timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return sorted(entry["user"] for entry in body["presence"]), body["subscribers"]


def who_answers(port: int) -> tuple[list[str], int] | None:
    """``who(port)``, or ``None`` while the server cannot reach Redis."""
    try:
        return who(port)
    except AssertionError:
        return None


def publish_counted(port: int, data: str) -> tuple[str, int]:
    reply = requests.post(
        f"http://127.0.0.1:{port}/publish",
        data={"channel": "room", "data": data, "delivery": "1"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["id"], reply.json()["delivered"]


def test_presence_spans_processes_and_a_killed_process_expires(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Both processes see every member; a SIGKILLed one drops out within its TTL."""
    url = redis_server.url + "?presence_ttl=2"
    with processes(tmp_path) as procs:
        port_a = start_server(procs, url)
        port_b = start_server(procs, url)
        process_a = procs.started[0]
        streams = [member(port_a, "ann"), member(port_a, None)]
        try:
            # 1. A watcher on B, and members on both processes.
            watcher = member(port_b, "wes", events=True)
            streams.append(watcher)
            streams.append(member(port_b, "bob"))
            expected = (["ann", "bob", "wes"], 4)
            # 2. Either process answers for all of them, once counts arrived.
            assert wait_until(lambda: who(port_a) == expected, 60)
            assert who(port_b) == expected
            # 3. The watcher was told each named member once, itself included.
            joins = watcher.events(3, timeout=60)
            assert sorted(json.loads(m.data)["user"] for m in joins) == [
                "ann",
                "bob",
                "wes",
            ]
            assert {m.event for m in joins} == {"join"}
            # 4. A counted publish from A counts the streams of both processes.
            new_id, handed = publish_counted(port_a, "hello")
            assert handed == 4
            assert watcher.events(1, timeout=30)[0].id == new_id
            # ... and so does a plain script that is no server at all.
            new_id, handed = publish_from_script(url)
            assert handed == 4
            assert watcher.events(1, timeout=30)[0].id == new_id
            # 5. A dies without a goodbye: within presence_ttl it is gone,
            #    and B's watcher hears that ann left.
            process_a.send(signal.SIGKILL)
            process_a.proc.wait(10)
            assert wait_until(lambda: who(port_b) == (["bob", "wes"], 2), 60)
            (left,) = watcher.events(1, timeout=60)
            assert (left.event, json.loads(left.data)) == ("leave", {"user": "ann"})
            # 6. And counted publishes count what is left: B's two streams.
            assert publish_counted(port_b, "after")[1] == 2
        finally:
            for stream in streams:
                stream.close()


def test_presence_comes_back_after_redis_loses_everything(
    redis_server: RedisServer,  # noqa: F811
    serve: Callable[..., Server],
) -> None:
    """A Redis restart without data: the heartbeat writes the members again."""
    broker = gsse.Broker.from_url(redis_server.url, presence_ttl=3)
    try:
        port = serve(make_app(broker)).port
        with member(port, "ann"), member(port, None):
            assert wait_until(lambda: who(port) == (["ann"], 2), 60)
            redis_server.kill()
            redis_server.start()  # empty: no persistence
            assert wait_until(lambda: who_answers(port) == (["ann"], 2), 60)
    finally:
        broker.close()


def test_a_graceful_shutdown_leaves_nothing_in_redis(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """SIGTERM with a member open: once the process exits, its keys are gone."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        with processes(tmp_path) as procs:
            port = start_server(procs, redis_server.url)
            with member(port, "ann"):
                assert wait_until(lambda: who(port) == (["ann"], 1), 60)
                assert client.keys("gsse:presence:*")
                procs.started[0].send(signal.SIGTERM)
                assert procs.started[0].wait(30) == 0
        assert client.keys("gsse:*") == []
    finally:
        client.close()
