"""A live dashboard: a chart fed by a channel, published to by a greenlet.

Install:   pip install gsse
Run it:    gsse run examples.dashboard:app      (or: python examples/dashboard.py)
Then open: http://127.0.0.1:8000/   (or: curl -N localhost:8000/metrics/stream)
Port:      --port 9000, or GSSE_PORT=9000 for either command

Streams do not produce events here; they subscribe to the ``metrics``
channel of a :class:`gsse.Broker`, and one publisher greenlet feeds it for
every viewer at once. A viewer that reconnects with ``Last-Event-ID`` gets
the samples it missed from the channel's history, so its chart has no gap.
"""

import math
import os
import random
import time

import gevent

import gsse
from gsse import App
from gsse import Event

app = App()

#: memory:// by default; --broker redis://... (GSSE_BROKER) to share it.
broker = gsse.Broker.from_url()

CHANNEL = "metrics"
#: Seconds between two samples.
INTERVAL = 0.25

_publisher: gevent.Greenlet | None = None

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse dashboard</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem 3rem; }
  svg { width: 100%; max-width: 44rem; height: 16rem; background: #f6f8fa;
        border: 1px solid #d0d7de; border-radius: 6px; }
  polyline { fill: none; stroke: #0969da; stroke-width: 2.5; }
  .value { font: 700 2.5rem ui-monospace, monospace; }
</style>
<h1>Requests per second</h1>
<p class="value"><output id="value">–</output></p>
<svg viewBox="0 0 600 200" preserveAspectRatio="none">
  <polyline id="line" points=""></polyline>
</svg>
<p id="status">connecting…</p>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  const WINDOW = 40, points = [];
  window.samples = 0;
  function draw() {
    const max = Math.max(100, ...points.map(p => p.value));
    const step = 600 / (WINDOW - 1);
    const xy = (p, i) =>
      `${(i * step).toFixed(1)},${(200 - 190 * p.value / max).toFixed(1)}`;
    document.getElementById("line").setAttribute("points", points.map(xy).join(" "));
  }
  const source = gsse.connect("/metrics/stream", {shared: true});
  source.addEventListener("sample", (e) => {
    const sample = JSON.parse(e.data);
    points.push(sample);
    if (points.length > WINDOW) points.shift();
    window.samples += 1;
    document.getElementById("value").textContent = sample.value.toFixed(1);
    document.getElementById("status").textContent =
      `live: ${window.samples} samples, last id ${e.lastEventId}`;
    draw();
  });
  source.addEventListener("reset", () => { points.length = 0; draw(); });
  source.onerror = () => {
    document.getElementById("status").textContent = "reconnecting…";
  };
</script>
"""


def publish_samples() -> None:
    """Publish a made-up metric four times a second, forever (one greenlet)."""
    value, phase = 50.0, 0.0
    while True:
        phase += 0.2
        value = max(0.0, value + random.uniform(-6, 6) + 4 * math.sin(phase))
        try:
            sample = {"t": time.time(), "value": round(value, 2)}
            broker.publish(CHANNEL, sample, event="sample")
        except gsse.BrokerUnavailable:
            pass  # the broker's backend is away; try again with the next sample
        time.sleep(INTERVAL)


def ensure_publisher() -> None:
    """Start the publisher with the first viewer, once per process."""
    global _publisher
    if _publisher is None or _publisher.dead:
        _publisher = gevent.spawn(publish_samples)


@app.route("/")
def index(event: Event) -> str:
    ensure_publisher()
    return PAGE


@app.route("/metrics/stream")
def metrics_stream(event: Event) -> None:
    ensure_publisher()
    event.start_sse(retry=1000)
    event.subscribe(broker, CHANNEL)


if __name__ == "__main__":
    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
