"""The benchmark contract, served by gsse (run: ``gsse run gsse_app:app``).

Routes (the same in every server under ``bench/servers/``):

- ``/ping``: a plain ``pong``;
- ``/idle``: a callback stream that sends one event, then idles (its
  greenlet sleeps; the registry sends the keep-alives);
- ``/sub``: a channel subscriber (no greenlet while it waits);
- ``/publish?rate=R&seconds=S``: starts an in-process publisher that sends R
  events a second to ``/sub`` for S seconds, each stamped with its
  scheduled time (so a publisher that falls behind shows as latency);
- ``/tick`` and ``/tickb``: ``send; time.sleep(0.1)`` loops, the second
  with ``blocking=True`` (a thread of the pool).

Every event's data is the time it was due, in microseconds since the epoch.
"""

from __future__ import annotations

import time
from typing import Any

import gevent

from gsse import App
from gsse import ClientDisconnected
from gsse import Event
from gsse import SSEWriter
from gsse.wire import encode_event

try:
    from gsse import Broker
except ImportError:  # gsse.Broker has not landed: a one-encoding fan-out here
    Broker = None  # type: ignore[assignment,misc]

app = App()
LONG = 3600  # seconds: longer than any benchmark step
CHANNEL = "bench"


def now_us() -> int:
    return int(time.time() * 1_000_000)


class _Fanout:
    """Channel stand-in while gsse.Broker is missing: encode once, write to all."""

    def __init__(self) -> None:
        self.writers: set[SSEWriter] = set()
        self.next_id = 0

    def subscriber(self, *channels: str) -> Any:
        return self.writers.add

    def publish(self, channel: str, data: str) -> str:
        self.next_id += 1
        payload = encode_event(data, id=str(self.next_id))
        for writer in list(self.writers):
            try:
                writer.write_raw(payload)
            except ClientDisconnected:
                self.writers.discard(writer)
        return str(self.next_id)


broker: Any = Broker.from_url("memory://") if Broker is not None else _Fanout()


@app.route("/ping")
def ping(event: Event) -> str:
    return "pong"


def idle(writer: SSEWriter) -> None:
    writer.send_event(str(now_us()))
    while not writer.closed:
        time.sleep(LONG)


@app.route("/idle")
def idle_stream(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(idle)


@app.route("/sub")
def sub(event: Event) -> None:
    event.start_sse()
    event.subscribe(broker, CHANNEL)


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
            broker.publish(CHANNEL, str(int(due * 1_000_000)))
            i += 1
        time.sleep(max(0.0, start + i / rate - time.time()))


@app.route("/publish")
def publish(event: Event) -> str:
    args = event.request.args
    gevent.spawn(
        publisher,
        float(args["rate"]),
        float(args["seconds"]),
        args.get("single") == "1",
    )
    return "ok"


def tick(writer: SSEWriter) -> None:
    for _ in range(36_000):
        writer.send_event(str(now_us()))
        time.sleep(0.1)


@app.route("/tick")
def tick_stream(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(tick)


@app.route("/tickb")
def tick_blocking(event: Event) -> None:
    event.start_sse()
    event.set_stream_callback(tick, blocking=True)
