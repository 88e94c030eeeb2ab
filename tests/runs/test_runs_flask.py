"""runs.stream() from a Flask view under SSEMiddleware: the run, 204, 404."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

import gsse
from gsse import Server
from gsse.runs import RunWriter
from tests.helpers import RawStream

flask = pytest.importorskip("flask")


def test_a_flask_view_follows_a_run(serve: Callable[..., Server]) -> None:
    runs = gsse.Runs(gsse.Broker.from_url("memory://"))
    app = flask.Flask(__name__)

    @app.get("/runs/<run_id>")
    def follow(run_id: str) -> object:
        return runs.stream(run_id)

    def produce(writer: RunWriter) -> None:
        for i in range(3):
            writer.send_event({"i": i}, event="token")
            gevent.sleep(0.01)

    port = serve(gsse.SSEMiddleware(app)).port
    run = runs.start(produce)
    with RawStream(port, f"/runs/{run.id}", timeout=30) as stream:
        assert stream.status == 200
        stream.read_to_end(30)
        messages = stream.decoder.feed(stream.body)
    assert [m.event for m in messages] == ["token"] * 3 + ["end"]
    headers = {"Last-Event-ID": messages[-1].id, "Connection": "close"}
    with RawStream(port, f"/runs/{run.id}", headers=headers) as stream:
        assert stream.status == 204
    with RawStream(port, "/runs/" + "y" * 22, headers={"Connection": "close"}) as r:
        assert r.status == 404
