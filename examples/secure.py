"""A private stream: session cookie, CORS for another origin, limits, metrics.

Install:   pip install 'gsse[metrics]'
Run it:    python examples/secure.py
Port:      GSSE_PORT=9000 python examples/secure.py
Then:      curl -N http://127.0.0.1:8000/events             -> 401
           curl http://127.0.0.1:8000/metrics               -> 401
           curl -c jar http://127.0.0.1:8000/login          -> sets the cookie
           curl -N -b jar http://127.0.0.1:8000/events      -> the stream
           curl -b jar http://127.0.0.1:8000/metrics        -> Prometheus text

A page served from http://127.0.0.1:3000 may open the stream with
``new EventSource("http://127.0.0.1:8000/events", {withCredentials: true})``.

The metrics (open streams, refusals, stalls) say much about the server, so
they sit behind the same sign-in as the stream, inside the app: the
server's own ``metrics_path`` would answer anyone who can reach the port.
For Prometheus, check a bearer token there instead (see docs/operations.md).
``GSSE_PORT`` picks another port.
"""

from __future__ import annotations

import os
import secrets
import time

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from gsse import App
from gsse import Event
from gsse import SSEWriter
from gsse.auth import AuthMiddleware
from gsse.auth import CORSMiddleware
from gsse.auth import authorize
from gsse.metrics import metrics_app

sessions: set[str] = set()

app = App()


def signed_in(request: Request) -> bool:
    """Allow requests whose session cookie we issued; anything else gets 401."""
    return request.cookies.get("session") in sessions


@app.route("/login")
def login(event: Event) -> Response:
    token = secrets.token_urlsafe(16)
    sessions.add(token)
    response = Response("signed in\n")
    # SameSite=None needs Secure (HTTPS) for real cross-site use; kept off
    # here so the example runs on plain http://127.0.0.1.
    response.set_cookie("session", token, httponly=True, samesite="Lax")
    return response


@app.route("/events")
@authorize(signed_in)
def events(event: Event) -> None:
    event.start_sse(send_timeout=10)
    event.set_stream_callback(clock)


def clock(writer: SSEWriter) -> None:
    with writer:
        while not writer.shutting_down:
            writer.send_event(time.strftime("%H:%M:%S"), event="time")
            time.sleep(1)
        writer.send_event("the server is stopping", event="bye")


# /metrics is mounted inside the app and checked like /events; AuthMiddleware
# matches every spelling of the path (//metrics, /METRICS, /metrics;x ...).
site = AuthMiddleware(
    DispatcherMiddleware(app, {"/metrics": metrics_app()}),
    signed_in,
    paths=["/metrics"],
)
wsgi_app = CORSMiddleware(
    site, origins=["http://127.0.0.1:3000"], allow_credentials=True
)

if __name__ == "__main__":
    import logging

    from gsse import Server
    from gsse.server import ensure_monkey_patched

    ensure_monkey_patched()
    logging.basicConfig(level=logging.INFO)
    server = Server(
        wsgi_app,
        "127.0.0.1",
        int(os.environ.get("GSSE_PORT", "8000")),
        max_connections=1000,
        max_streams_per_ip=10,
        max_body_size=64 * 1024,
        max_blocking_time=0.5,
    )
    server.serve_forever()
