"""The benchmark contract as a naive Flask app on gevent's pywsgi.

The usual way to stream SSE from Flask: a generator per response, a
``gevent.queue.Queue`` per channel subscriber, the standard library
monkey-patched. Run: ``python flask_app.py PORT``. Routes: see gsse_app.py.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import gevent  # noqa: E402
from flask import Flask  # noqa: E402
from flask import Response  # noqa: E402
from flask import request  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from gevent.queue import Queue  # noqa: E402

app = Flask(__name__)
subscribers: set[Queue[str]] = set()
SSE = "text/event-stream"


def now_us() -> int:
    return int(time.time() * 1_000_000)


@app.get("/ping")
def ping() -> str:
    return "pong"


@app.get("/idle")
def idle() -> Response:
    def events() -> Iterator[str]:
        yield f"data: {now_us()}\n\n"
        while True:
            time.sleep(15)
            yield ": ping\n\n"

    return Response(events(), mimetype=SSE)


@app.get("/sub")
def sub() -> Response:
    queue: Queue[str] = Queue()

    def events() -> Iterator[str]:
        subscribers.add(queue)
        try:
            yield ": ok\n\n"
            while True:
                yield queue.get()
        finally:
            subscribers.discard(queue)

    return Response(events(), mimetype=SSE)


def publisher(rate: float, seconds: float, single: bool = False) -> None:
    count = int(rate * seconds)
    # single: one publish per wake-up, never a burst to catch up.
    burst = 1 if single else count
    start = time.time()
    stop_by = time.monotonic() + seconds + 10
    i = 0
    while i < count and time.monotonic() < stop_by:
        now = time.time()
        woke_at = i
        while i < count and i - woke_at < burst:
            due = start + i / rate
            if due > now:
                break
            payload = f"id: {i + 1}\ndata: {int(due * 1_000_000)}\n\n"
            for queue in list(subscribers):
                queue.put(payload)
            i += 1
        time.sleep(max(0.0, start + i / rate - time.time()))


@app.get("/publish")
def publish() -> str:
    gevent.spawn(
        publisher,
        float(request.args["rate"]),
        float(request.args["seconds"]),
        request.args.get("single") == "1",
    )
    return "ok"


@app.get("/tick")
def tick() -> Response:
    def events() -> Iterator[str]:
        for _ in range(36_000):
            yield f"data: {now_us()}\n\n"
            time.sleep(0.1)

    return Response(events(), mimetype=SSE)


if __name__ == "__main__":
    WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None).serve_forever()
