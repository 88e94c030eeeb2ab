"""Which host a run belongs to: the request's, else the one Runs was given or made.

A run is an open stream of its host (its graceful shutdown waits for it and
ends it ``interrupted``) and counts in that host's numbers; there is no
process-wide default host to fall back on.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import gevent
import pytest

import gsse
from gsse import Server
from gsse.host import Host
from gsse.runs import RunWriter
from tests.apps.runs_app import make_app
from tests.apps.runs_app import until_cancelled
from tests.helpers import wait_until
from tests.runs.conftest import start_run
from tests.runs.test_runs import follow_to_end


def forever(writer: RunWriter) -> None:
    until_cancelled(writer, 0, 0.01)


def test_a_run_started_in_a_request_counts_in_the_servers_host(
    serve: Callable[..., Server],
) -> None:
    runs = gsse.Runs(gsse.Broker.from_url("memory://"))
    server = serve(make_app(runs))
    before = server.hosting.stats.streams_opened
    run_id = start_run(server.port, kind="forever", delay=0.01)
    assert wait_until(lambda: server.hosting.open_streams == 1, 10)
    assert server.hosting.stats.streams_opened == before + 1
    assert runs.shutdown() == 0  # nothing of its own to shut down
    assert runs.cancel(run_id)
    assert wait_until(lambda: server.hosting.open_streams == 0, 10)
    assert runs.get(run_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_run_started_outside_a_request_belongs_to_the_host_runs_made(
    serve: Callable[..., Server],
) -> None:
    runs = gsse.Runs(gsse.Broker.from_url("memory://"))
    server = serve(make_app(runs))
    run = runs.start(forever)
    assert server.hosting.open_streams == 0
    gevent.sleep(0.05)
    # Ends it as interrupted after the grace period, as a server's would.
    assert runs.shutdown(graceful_timeout=0.2) == 1
    assert runs.get(run.id).status == "interrupted"  # type: ignore[union-attr]
    messages = follow_to_end(server.port, run.id)
    assert json.loads(messages[-1][2]) == {"status": "interrupted"}


def test_a_host_given_to_runs_owns_the_runs_started_outside_requests() -> None:
    host = Host()
    runs = gsse.Runs(gsse.Broker.from_url("memory://"), host=host)
    run = runs.start(forever)
    assert host.open_streams == 1 and host.stats.open_streams == 1
    assert runs.shutdown() == 0  # the host is its owner's to shut down
    assert host.shutdown(graceful_timeout=0.2) == 1
    assert runs.get(run.id).status == "interrupted"  # type: ignore[union-attr]


def test_bad_hosts_and_redis_cluster_are_refused() -> None:
    broker = gsse.Broker.from_url("memory://")
    with pytest.raises(TypeError, match="gsse.host.Host"):
        gsse.Runs(broker, host="localhost")  # type: ignore[arg-type]
    cluster = gsse.Broker.from_url("redis+cluster://127.0.0.1:1")
    try:
        with pytest.raises(ValueError, match="redis\\+cluster"):
            gsse.Runs(cluster)
    finally:
        cluster.close()
