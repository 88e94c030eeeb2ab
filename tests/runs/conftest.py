"""Fixtures for the runs suite: every test runs on memory:// and on real Redis.

The backends come from the broker suite's fixtures (an emptied session
``redis-server`` per test); each test gets a gsse server with
:mod:`tests.apps.runs_app` on a free port, and helpers to talk to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

import gsse
from gsse import Server
from tests.apps.runs_app import make_app
from tests.brokers.conftest import REDIS
from tests.brokers.conftest import make_broker as make_broker  # noqa: F401
from tests.brokers.conftest import shared_redis as shared_redis  # noqa: F401
from tests.brokers.conftest import shared_sentinel as shared_sentinel  # noqa: F401
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.redis_server import RedisServer
from tests.redis_topology import SentinelServers

MakeBroker = Callable[..., gsse.Broker]


def post(port: int, path: str) -> Any:
    """POST ``path`` with an empty body; the JSON answer."""
    headers = {"Connection": "close", "Content-Length": "0"}
    with RawStream(port, path, method="POST", headers=headers) as response:
        body = response.read_to_end(10)
        assert response.status == 200, body
    return json.loads(body)


def start_run(port: int, kind: str = "count", n: int = 20, delay: float = 0.01) -> str:
    """Start a run on the server at ``port``; its id."""
    answer = post(port, f"/start?kind={kind}&n={n}&delay={delay}")
    return str(answer["id"])


def info(port: int, run_id: str) -> dict[str, Any] | None:
    """``runs.get(run_id)`` as the server at ``port`` answers it."""
    status, body = http_get(port, f"/info/{run_id}", timeout=10)
    if status == 404:
        return None
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=REDIS),
        pytest.param("redis-sentinel", marks=REDIS),
    ]
)
def broker_url(request: pytest.FixtureRequest) -> str:
    """The broker suite's backends but Redis Cluster, which gsse.Runs refuses."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis-sentinel":
        sentinel: SentinelServers = request.getfixturevalue("shared_sentinel")
        with sentinel.primary().client() as client:
            client.flushdb()
        return sentinel.url
    server: RedisServer = request.getfixturevalue("shared_redis")
    with redis.Redis.from_url(server.url) as client:
        client.flushdb()
    return server.url


@pytest.fixture
def runs(make_broker: MakeBroker) -> gsse.Runs:  # noqa: F811
    """Runs on this test's backend, kept a minute after they end."""
    return gsse.Runs(make_broker(), ttl=60)


@pytest.fixture
def port(serve: Callable[..., Server], runs: gsse.Runs) -> int:
    """A gsse server running :mod:`tests.apps.runs_app` on ``runs``."""
    return serve(make_app(runs)).port
