"""An app that starts, follows and cancels runs of the broker GSSE_BROKER names.

``POST /start?kind=count&n=20&delay=0.01`` starts a run and answers its id;
``/runs/<id>`` follows it (``event.follow``); ``/flask-style/<id>`` follows it
with ``runs.stream``; ``POST /cancel/<id>`` cancels; ``/info/<id>`` answers
``runs.get``. Used in process (``make_app``) and by
``gsse run tests.apps.runs_app:app``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gevent
from werkzeug.wrappers import Response

import gsse
from gsse import App
from gsse import Event
from gsse.runs import RunWriter


def count(writer: RunWriter, n: int, delay: float) -> None:
    """``n`` events ``{"i": i}``, ``delay`` s apart; stops when cancelled."""
    for i in range(n):
        if writer.cancelled:
            return
        writer.send_event({"i": i}, event="token")
        gevent.sleep(delay)


def fail(writer: RunWriter, n: int, delay: float) -> None:
    """Two events, then an error whose text must never reach a follower."""
    writer.send_event({"i": 0}, event="token")
    writer.send_event({"i": 1}, event="token")
    raise RuntimeError("secret-detail-of-the-failure")


def until_cancelled(writer: RunWriter, n: int, delay: float) -> None:
    """One event per ``delay`` s until cancelled (then returns)."""
    i = 0
    while not writer.cancelled:
        writer.send_event({"i": i}, event="token")
        i += 1
        gevent.sleep(delay)


def blocking_until_cancelled(writer: RunWriter, n: int, delay: float) -> None:
    """As :func:`until_cancelled`, in a pool thread with a real blocking sleep."""
    sleep = gevent.monkey.get_original("time", "sleep")
    i = 0
    while not writer.cancelled:
        writer.send_event({"i": i}, event="token")
        i += 1
        sleep(delay)


PRODUCERS: dict[str, Any] = {
    "count": count,
    "fail": fail,
    "forever": until_cancelled,
    "blocking": blocking_until_cancelled,
}


def make_app(runs: gsse.Runs) -> App:
    app = App()

    @app.route("/start", methods=["POST"])
    def start(event: Event) -> dict[str, object]:
        args = event.request.args
        kind = args.get("kind", "count")
        run = runs.start(
            PRODUCERS[kind],
            int(args.get("n", 20)),
            float(args.get("delay", 0.01)),
            blocking=kind == "blocking",
        )
        return {"id": run.id, "pid": os.getpid()}

    @app.route("/runs/<run_id>")
    def follow(event: Event) -> None:
        event.start_sse()
        event.follow(runs, event.path_params["run_id"])

    @app.route("/wsgi/<run_id>")
    def follow_wsgi(event: Event) -> Response:
        return runs.stream(event.path_params["run_id"])

    @app.route("/cancel/<run_id>", methods=["POST"])
    def cancel(event: Event) -> dict[str, object]:
        return {"cancelled": runs.cancel(event.path_params["run_id"])}

    @app.route("/info/<run_id>")
    def info(event: Event) -> dict[str, object] | Response:
        found = runs.get(event.path_params["run_id"])
        if found is None:
            return Response("unknown\n", status=404)
        return {**found._asdict(), "pid": os.getpid(), "now": time.time()}

    return app


app = make_app(gsse.Runs(gsse.Broker.from_url(), ttl=60))
