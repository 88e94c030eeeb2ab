"""An app that streams any channels of the broker GSSE_BROKER names.

``/sub?channel=a&channel=b`` subscribes (``&user=bob`` with presence
``{"user": "bob"}``, ``&events=1`` with ``presence_events=True``); ``POST
/publish`` with ``channel``, ``data`` and optional ``event`` publishes and
answers the id (``delivery=1``: and the delivery count); ``/who?channel=``
answers the channel's presence and subscribers. Used in process
(``make_app``) and by ``gsse run tests.apps.broker_app:app``.
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
        args = event.request.args
        user = args.get("user")
        event.start_sse()
        event.subscribe(
            broker,
            *args.getlist("channel"),
            presence=None if user is None else {"user": user},
            presence_events=args.get("events") == "1",
        )

    @app.route("/publish", methods=["POST"])
    def publish(event: Event) -> dict[str, object]:
        form = event.request.form
        if form.get("delivery") == "1":
            new_id, handed = broker.publish(
                form["channel"],
                form["data"],
                event=form.get("event") or None,
                return_delivery=True,
            )
            return {"id": new_id, "pid": os.getpid(), "delivered": handed}
        new_id = broker.publish(
            form["channel"], form["data"], event=form.get("event") or None
        )
        return {"id": new_id, "pid": os.getpid()}

    @app.route("/who")
    def who(event: Event) -> dict[str, object]:
        channel = event.request.args["channel"]
        return {
            "presence": broker.presence(channel),
            "subscribers": broker.subscribers(channel),
        }

    @app.route("/")
    def index(event: Event) -> str:
        return "ok"

    return app


app = make_app(gsse.Broker.from_url())
