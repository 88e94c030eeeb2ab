"""The seed example: a counter that ticks once a second, 30 times.

Install:   pip install gsse
Run it:    gsse run examples.counter:app      (or: python examples/counter.py)
Then open: http://127.0.0.1:8000/   (or: curl -N http://127.0.0.1:8000/events)
Port:      --port 9000, or GSSE_PORT=9000 for either command

A page that reconnects (the browser does so by itself) sends the last tick
it saw as ``Last-Event-ID``, and the count goes on from there; after the
last tick the server answers 204, which tells the browser to stop. Ctrl-C
stops the server at once: the loop sees ``writer.shutting_down`` and says
goodbye.
"""

import os
import time

from gsse import App
from gsse import Event
from gsse import SSEWriter

app = App()

#: Ticks in all, numbered 0 to COUNT - 1 (each tick's id is its number).
COUNT = 30

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse counter</title>
<h1>gsse counter</h1>
<p>Last tick: <output id="tick">waiting…</output> (id <output id="id">-</output>)</p>
<ol id="log"></ol>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  const source = gsse.connect("/events", {shared: true});
  source.addEventListener("bye", () => {
    document.getElementById("tick").textContent = "the server stopped";
  });
  source.addEventListener("tick", (e) => {
    document.getElementById("tick").textContent = e.data;
    document.getElementById("id").textContent = e.lastEventId;
    const item = document.createElement("li");
    item.textContent = `${e.lastEventId}: ${e.data}`;
    document.getElementById("log").append(item);
  });
</script>
"""


@app.route("/")
def index(event: Event) -> str:
    return PAGE


def first_tick(last_event_id: str | None) -> int:
    """The tick after the one the client saw last (0 for a new client)."""
    if last_event_id is None or not last_event_id.isdigit():
        return 0
    return int(last_event_id) + 1


@app.route("/events")
def events(event: Event) -> tuple[str, int] | None:
    start = first_tick(event.last_event_id)
    if start >= COUNT:
        return "", 204  # counted to the end: 204 tells the browser to stop
    event.start_sse()  # status 200, text/event-stream headers
    event.set_stream_callback(lambda writer: stream_counter(writer, start))
    return None  # the handler returns at once; nothing is streamed from here


def stream_counter(writer: SSEWriter, start: int = 0) -> None:
    with writer:  # closes the stream on exit, even on error
        for i in range(start, COUNT):
            if writer.shutting_down:  # Ctrl-C or SIGTERM: end now, politely
                writer.send_event(data="the server is stopping", event="bye")
                return
            writer.send_event(data=f"tick {i}", event="tick", id=str(i))
            time.sleep(1)  # plain blocking code; does not stall the server


if __name__ == "__main__":
    import gsse

    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
