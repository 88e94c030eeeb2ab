"""The seed example: a counter that ticks once a second, 30 times.

Run it:    gsse run examples.counter:app      (or: python examples/counter.py)
Then open: http://127.0.0.1:8000/   (or: curl -N http://127.0.0.1:8000/events)
"""

import time

from gsse import App
from gsse import Event
from gsse import SSEWriter

app = App()

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse counter</title>
<h1>gsse counter</h1>
<p>Last tick: <output id="tick">waiting…</output> (id <output id="id">-</output>)</p>
<ol id="log"></ol>
<script>
  const source = new EventSource("/events");
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


@app.route("/events")
def events(event: Event) -> None:
    event.start_sse()  # status 200, text/event-stream headers
    event.set_stream_callback(stream_counter)
    # the handler returns at once; nothing is streamed from here


def stream_counter(writer: SSEWriter) -> None:
    with writer:  # closes the stream on exit, even on error
        for i in range(30):
            writer.send_event(data=f"tick {i}", event="tick", id=str(i))
            time.sleep(1)  # plain blocking code; does not stall the server


if __name__ == "__main__":
    import gsse

    gsse.run(app, port=8000)
