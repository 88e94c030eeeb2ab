"""A clock: the server's time, pushed to every open page once a second.

Install:   pip install gsse
Run it:    gsse run examples.clock:app      (or: python examples/clock.py)
Then open: http://127.0.0.1:8000/   (or: curl -N http://127.0.0.1:8000/time)
Port:      --port 9000, or GSSE_PORT=9000 for either command

Each stream is one loop in its own greenlet; ``time.sleep`` lets the others
run. The loop ends when the client goes away (``send_event`` raises
``gsse.ClientDisconnected``) or, politely, when the server shuts down.
"""

import os
import time
from datetime import datetime
from datetime import timezone

from gsse import App
from gsse import Event
from gsse import SSEWriter

app = App()

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse clock</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 3rem; }
  #clock { font: 700 5rem ui-monospace, monospace; }
  #status { color: #666; }
</style>
<h1>gsse clock</h1>
<div id="clock">--:--:--</div>
<p id="status">connecting…</p>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  window.ticks = 0;
  const source = gsse.connect("/time", {shared: true});
  source.onopen = () => { document.getElementById("status").textContent = "live"; };
  source.addEventListener("time", (e) => {
    const now = JSON.parse(e.data);
    document.getElementById("clock").textContent = now.time;
    window.ticks += 1;
    document.getElementById("status").textContent =
      `live: ${window.ticks} updates, server time ${now.iso}`;
  });
  source.addEventListener("bye", () => {
    document.getElementById("status").textContent = "the server is restarting";
  });
  source.onerror = () => {
    document.getElementById("status").textContent = "reconnecting…";
  };
</script>
"""


@app.route("/")
def index(event: Event) -> str:
    return PAGE


@app.route("/time")
def clock(event: Event) -> None:
    # retry: browsers reconnect after 2 s if the server goes away.
    event.start_sse(retry=2000)
    event.set_stream_callback(tick)


def tick(writer: SSEWriter) -> None:
    with writer:
        while not writer.shutting_down:
            now = datetime.now(timezone.utc)
            data = {"time": now.strftime("%H:%M:%S"), "iso": now.isoformat()}
            writer.send_event(data, event="time")
            # Sleep to the next whole second, so every page ticks together.
            time.sleep(1 - now.microsecond / 1_000_000)
        writer.send_event("see you soon", event="bye")


if __name__ == "__main__":
    import gsse

    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
