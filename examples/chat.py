"""A browser chat: an HTML page, an EventSource per room, and POST to talk.

Install:   pip install gsse      (with a Redis broker: pip install 'gsse[redis]')
Run it:    gsse run examples.chat:app      (or: python examples/chat.py)
Then open: http://127.0.0.1:8000/ in two tabs (or /?room=books for another room)
Port:      --port 9000, or GSSE_PORT=9000 for either command
Shared:    gsse run examples.chat:app --broker redis://127.0.0.1:6379/0

Each room is a channel of a :class:`gsse.Broker`: posting a message publishes
it, and every open page of that room, in any process sharing the broker,
receives it. With the default ``memory://`` broker one process serves the
chat; with ``--broker redis://...`` (or ``GSSE_BROKER``) many processes and
machines do, and ``--workers 4`` just works. A page that loses its
connection gets the messages it missed when the browser reconnects (its
``Last-Event-ID``), or a ``reset`` event if the room's history no longer
holds them.
"""

from __future__ import annotations

import os
import re

import gsse
from gsse import App
from gsse import Event

app = App()

#: memory:// by default; ``gsse run --broker redis://...`` sets GSSE_BROKER.
broker = gsse.Broker.from_url(history=200)

MAX_NAME = 40
MAX_TEXT = 500
#: Room names: letters, digits, ``-`` and ``_`` (the channel is ``room:<name>``).
ROOM = re.compile(r"[\w-]{1,40}")

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem 3rem; max-width: 44rem; }
  #log { list-style: none; padding: 0; min-height: 10rem; border: 1px solid #d0d7de;
         border-radius: 6px; padding: .5rem 1rem; background: #f6f8fa; }
  #log li { margin: .25rem 0; } #log b { color: #0969da; }
  #log .note { color: #666; font-style: italic; }
  form { display: flex; gap: .5rem; margin-top: 1rem; }
  #text { flex: 1; }
</style>
<h1>Room <span id="room"></span></h1>
<ul id="log"></ul>
<form id="say">
  <input id="name" placeholder="your name" maxlength="40" required>
  <input id="text" placeholder="say something" maxlength="500"
         autocomplete="off" required>
  <button>Send</button>
</form>
<p id="status">connecting…</p>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  const room = new URLSearchParams(location.search).get("room") || "lobby";
  const path = `/rooms/${encodeURIComponent(room)}`;
  document.getElementById("room").textContent = room;
  document.getElementById("name").value =
    localStorage.getItem("name") || `guest${Math.floor(Math.random() * 1000)}`;
  window.received = 0;
  const log = document.getElementById("log");
  function line(parts, note) {
    const li = document.createElement("li");
    if (note) li.className = "note";
    li.append(...parts);
    log.append(li);
    li.scrollIntoView();
  }
  const source = gsse.connect(`${path}/events`, {shared: true});
  source.onopen = () => { document.getElementById("status").textContent = "live"; };
  source.onerror = () => {
    document.getElementById("status").textContent = "reconnecting…";
  };
  source.addEventListener("chat", (e) => {
    const message = JSON.parse(e.data);
    const who = document.createElement("b");
    who.textContent = message.name;
    line([who, `: ${message.text}`]);  // text nodes: no HTML from others
    window.received += 1;
  });
  source.addEventListener("reset", () => {
    line(["(some messages were missed while you were away)"], true);
  });
  document.getElementById("say").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = document.getElementById("name").value;
    const text = document.getElementById("text");
    localStorage.setItem("name", name);
    const reply = await fetch(path, {
      method: "POST", body: new URLSearchParams({name, text: text.value}),
    });
    if (reply.ok) text.value = "";
    else line([`not sent: ${(await reply.json()).error}`], true);
  });
</script>
"""


def _field(event: Event, name: str, longest: int) -> str | None:
    value = event.request.form.get(name, "").strip()
    return value if 0 < len(value) <= longest else None


def _room(event: Event) -> str | None:
    room = str(event.path_params["room"])
    return room if ROOM.fullmatch(room) else None


@app.route("/")
def index(event: Event) -> str:
    return PAGE


@app.route("/rooms/<room>", methods=["POST"])
def say(event: Event) -> tuple[dict[str, str], int]:
    room = _room(event)
    name = _field(event, "name", MAX_NAME)
    text = _field(event, "text", MAX_TEXT)
    if room is None or name is None or text is None:
        error = (
            f"a room name (letters, digits, - and _), a name (1-{MAX_NAME}"
            f" characters) and a text (1-{MAX_TEXT}) are needed"
        )
        return {"error": error}, 400
    try:
        message_id = broker.publish(
            f"room:{room}", {"name": name, "text": text}, event="chat"
        )
    except gsse.BrokerUnavailable:
        return {"error": "the chat is unavailable for a moment; try again"}, 503
    return {"id": message_id}, 201


@app.route("/rooms/<room>/events")
def room_events(event: Event) -> tuple[dict[str, str], int] | None:
    room = _room(event)
    if room is None:
        return {"error": "room names are letters, digits, - and _"}, 404
    event.start_sse(retry=1000)
    event.subscribe(broker, f"room:{room}")


if __name__ == "__main__":
    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
