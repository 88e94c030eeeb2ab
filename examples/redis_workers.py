"""Many worker processes, one set of channels: Redis shares them.

Install:   pip install 'gsse[redis,workers]'      (and start a redis-server)
Run it:    gsse run examples.redis_workers:app -w 2 --broker redis://127.0.0.1:6379/0
Then open: http://127.0.0.1:8000/ in a few tabs and post notes from any of them.
Port:      --port 9000, or GSSE_PORT=9000

Each worker process has its own streams. A note posted to one worker is
published to Redis, and every worker sends it to its own subscribers, so
every tab sees every note whichever process serves it. Each note says which
process published it; each page says which process serves its stream.
"""

import os

import gsse
from gsse import App
from gsse import Event
from gsse import SSEWriter

app = App()

#: The broker --broker names (GSSE_BROKER); memory:// when run without it.
broker = gsse.Broker.from_url()

CHANNEL = "board"

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse workers</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem 3rem; }
  li { margin: .3rem 0; } small { color: #666; }
</style>
<h1>One board, many workers</h1>
<p>This page's stream is served by worker <b id="pid">…</b>.</p>
<form id="post"><input id="text" placeholder="a note" autocomplete="off" required>
  <button>Post</button> <small id="posted"></small></form>
<ol id="notes"></ol>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  window.pid = null;
  const source = gsse.connect("/board");
  source.addEventListener("hello", (e) => {
    window.pid = JSON.parse(e.data).pid;
    document.getElementById("pid").textContent = window.pid;
  });
  source.addEventListener("note", (e) => {
    const note = JSON.parse(e.data);
    const li = document.createElement("li");
    li.textContent = `${note.text} `;
    const by = document.createElement("small");
    by.textContent = `(published by worker ${note.pid}, id ${e.lastEventId})`;
    li.append(by);
    document.getElementById("notes").append(li);
  });
  document.getElementById("post").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = document.getElementById("text");
    const body = new URLSearchParams({text: text.value});
    const reply = await fetch("/publish", {method: "POST", body});
    const answer = await reply.json();
    document.getElementById("posted").textContent = `posted by worker ${answer.pid}`;
    text.value = "";
  });
</script>
"""


@app.route("/")
def index(event: Event) -> str:
    return PAGE


@app.route("/publish", methods=["POST"])
def publish(event: Event) -> tuple[dict[str, object], int]:
    text = event.request.form.get("text", "").strip()
    if not text or len(text) > 500:
        return {"error": "text must be 1 to 500 characters"}, 400
    note_id = broker.publish(CHANNEL, {"text": text, "pid": os.getpid()}, event="note")
    return {"id": note_id, "pid": os.getpid()}, 201


@app.route("/board")
def board(event: Event) -> None:
    event.start_sse(retry=1000)
    event.set_stream_callback(follow_board)


def follow_board(writer: SSEWriter) -> None:
    # Say which process serves this stream, then hand it to the channel.
    writer.send_event({"pid": os.getpid()}, event="hello")
    broker.subscriber(CHANNEL)(writer)


if __name__ == "__main__":
    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
