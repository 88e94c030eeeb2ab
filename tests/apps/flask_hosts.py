"""One Flask app file that must stream the same under every host.

tests/test_middleware.py serves it with ``gsse run``, ``gunicorn -k gevent``
and the plain ``gevent.pywsgi`` script next to it, unchanged.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import copy_current_request_context
from flask import g
from flask import jsonify
from flask import request
from flask import session

import gsse

flask_app = Flask(__name__)
flask_app.secret_key = "tests-only"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """An ordinary auth decorator: it answers 401 before the view runs."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if "user" not in session:
            return jsonify(error="log in first"), 401
        return view(*args, **kwargs)

    return guarded


@flask_app.before_request
def remember_start() -> None:
    g.hooked = "before"


@flask_app.after_request
def mark_response(response: Any) -> Any:
    response.headers["X-Hooks"] = f"{g.get('hooked')},after"
    return response


@flask_app.errorhandler(LookupError)
def lookup_failed(error: LookupError) -> tuple[str, int]:
    return f"handled: {error}", 404


@flask_app.get("/")
def index() -> str:
    return "an ordinary page"


@flask_app.get("/login/<user>")
def login(user: str) -> str:
    session["user"] = user
    return f"logged in as {user}"


@flask_app.get("/count")
def count() -> gsse.SSEResponse:
    """``n`` events, one every ``every`` seconds, then the stream ends."""
    n = int(request.args.get("n", "3"))
    every = float(request.args.get("every", "0"))

    def counter(writer: gsse.SSEWriter) -> None:
        with writer:
            for i in range(n):
                writer.send_event(i, id=str(i))
                time.sleep(every)

    return gsse.stream(counter, retry=1000)


@flask_app.get("/forever")
def forever() -> gsse.SSEResponse:
    """Ticks until the host shuts down, then says goodbye."""

    def ticker(writer: gsse.SSEWriter) -> None:
        with writer:
            while not writer.shutting_down:
                writer.send_event("tick")
                time.sleep(0.05)
            writer.send_event("server going away", event="bye")

    return gsse.stream(ticker)


@flask_app.get("/private/events")
@login_required
def private_events() -> gsse.SSEResponse:
    @copy_current_request_context
    def greet(writer: gsse.SSEWriter) -> None:
        # The request context was copied: request and session still work.
        writer.send_event(f"hello {session['user']} from {request.args['room']}")
        writer.close()

    return gsse.stream(greet)


@flask_app.get("/missing/events")
def missing_events() -> gsse.SSEResponse:
    raise LookupError("no such feed")


@flask_app.get("/blocking/events")
def blocking_events() -> gsse.SSEResponse:
    def in_a_thread(writer: gsse.SSEWriter) -> None:
        writer.send_event(threading.current_thread().name)
        writer.close()

    return gsse.stream(in_a_thread, blocking=True)


@flask_app.get("/raises/events")
def raising_events() -> gsse.SSEResponse:
    def broken(writer: gsse.SSEWriter) -> None:
        writer.send_event("before the error")
        raise RuntimeError("callback bug")

    return gsse.stream(broken)


app = gsse.SSEMiddleware(flask_app, ping=0.5, graceful_timeout=3)
