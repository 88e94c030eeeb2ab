"""An app that streams any channels of the broker GSSE_BROKER names.

``/sub?channel=a&channel=b`` subscribes (``&snapshot=1``: with the
newest event of every key first); ``POST /publish`` with ``channel``,
``data`` and optional ``event`` publishes and answers the id. Used in
process (``make_app``) and by ``gsse run tests.apps.broker_app:app``.
"""

from __future__ import annotations

import os

import gsse
from gsse import App
from gsse import Event


def make_app(broker: gsse.Broker) -> App:
    app = App()

    @app.route("/sub")
    def sub(event: Event) -> None:
        event.start_sse()
        args = event.request.args
        snapshot = args.get("snapshot") == "1"
        event.subscribe(broker, *args.getlist("channel"), snapshot=snapshot)

    @app.route("/publish", methods=["POST"])
    def publish(event: Event) -> dict[str, object]:
        form = event.request.form
        new_id = broker.publish(
            form["channel"],
            form["data"],
            event=form.get("event") or None,
            key=form.get("key") or None,
        )
        return {"id": new_id, "pid": os.getpid()}

    @app.route("/")
    def index(event: Event) -> str:
        return "ok"

    return app


app = make_app(gsse.Broker.from_url())
