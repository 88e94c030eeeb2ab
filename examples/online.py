"""Who's online: a room that lists its open pages, live, with join and leave.

Install:   pip install gsse      (with a Redis broker: pip install 'gsse[redis]')
Run it:    gsse run examples.online:app      (or: python examples/online.py)
Then open: http://127.0.0.1:8000/?name=ann in one tab, /?name=bob in another
Port:      --port 9000, or GSSE_PORT=9000 for either command
Shared:    gsse run examples.online:app --broker redis://127.0.0.1:6379/0

Each page subscribes to its room's channel with ``presence={"name": ...}``
and ``presence_events=True``: it first gets a ``join`` for everyone already
there (itself included), then a ``join`` or ``leave`` as pages open and
close, in every process sharing the broker. A name open in two tabs is
listed once, with its count. "Wave" publishes to the room with
``return_delivery=True``, and the page says how many pages it reached (an
app would send an e-mail when that is 0). ``/rooms/<room>/who`` answers
``broker.presence()`` and ``broker.subscribers()`` as JSON.
"""

from __future__ import annotations

import os
import re

import gsse
from gsse import App
from gsse import Event

app = App()

#: memory:// by default; ``gsse run --broker redis://...`` sets GSSE_BROKER.
broker = gsse.Broker.from_url(history=100)

#: Room and member names: letters, digits, ``-`` and ``_``, 1 to 40 of them.
NAME = re.compile(r"[\w-]{1,40}")

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse: who's online</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem 3rem; max-width: 40rem; }
  #online { list-style: none; padding: .5rem 1rem; border: 1px solid #d0d7de;
            border-radius: 6px; background: #f6f8fa; min-height: 3rem; }
  #online li::before { content: "\\25CF  "; color: #1a7f37; }
  #log { color: #555; font-size: .9rem; }
</style>
<h1>Room <span id="room"></span>: <span id="count">0</span> online</h1>
<ul id="online"></ul>
<p><button id="wave">Wave</button> <span id="reached"></span></p>
<ul id="log"></ul>
<p id="status">connecting…</p>
<script>
  const query = new URLSearchParams(location.search);
  const room = query.get("room") || "lobby";
  const name = query.get("name") || `guest${Math.floor(Math.random() * 1000)}`;
  document.getElementById("room").textContent = room;
  const counts = new Map();  // name -> open pages (one name, many tabs)
  window.joins = 0; window.leaves = 0; window.waves = 0;
  function render() {
    const list = document.getElementById("online");
    list.replaceChildren(...[...counts.keys()].sort().map((who) => {
      const li = document.createElement("li");
      const n = counts.get(who);
      li.textContent = n > 1 ? `${who} (${n} tabs)` : who;  // text: no HTML
      return li;
    }));
    document.getElementById("count").textContent = counts.size;
  }
  function log(text) {
    const li = document.createElement("li");
    li.textContent = text;
    document.getElementById("log").prepend(li);
  }
  const path = `/rooms/${encodeURIComponent(room)}`;
  const source = new EventSource(`${path}/events?name=${encodeURIComponent(name)}`);
  source.onopen = () => { document.getElementById("status").textContent = "live"; };
  source.onerror = () => {
    // The server lists this page again when the browser reconnects.
    counts.clear(); render();
    document.getElementById("status").textContent = "reconnecting…";
  };
  source.addEventListener("join", (e) => {
    const who = JSON.parse(e.data).name;
    counts.set(who, (counts.get(who) || 0) + 1);
    window.joins += 1; render();
  });
  source.addEventListener("leave", (e) => {
    const who = JSON.parse(e.data).name;
    const n = (counts.get(who) || 1) - 1;
    if (n > 0) counts.set(who, n); else counts.delete(who);
    window.leaves += 1; render(); log(`${who} left`);
  });
  source.addEventListener("wave", (e) => {
    window.waves += 1; log(`${JSON.parse(e.data).name} waves`);
  });
  document.getElementById("wave").addEventListener("click", async () => {
    const reply = await fetch(`${path}/wave`, {
      method: "POST", body: new URLSearchParams({name}),
    });
    const body = await reply.json();
    document.getElementById("reached").textContent = reply.ok
      ? `reached ${body.delivered} page(s)` : body.error;
  });
</script>
"""


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and NAME.fullmatch(value) else None


@app.route("/")
def index(event: Event) -> str:
    return PAGE


@app.route("/rooms/<room>/events")
def room_events(event: Event) -> tuple[dict[str, str], int] | None:
    room = _name(event.path_params["room"])
    name = _name(event.request.args.get("name"))
    if room is None or name is None:
        return {"error": "room and name are letters, digits, - and _ (1-40)"}, 400
    event.start_sse(retry=1000)
    event.subscribe(
        broker, f"room:{room}", presence={"name": name}, presence_events=True
    )
    return None


@app.route("/rooms/<room>/wave", methods=["POST"])
def wave(event: Event) -> tuple[dict[str, object], int]:
    room = _name(event.path_params["room"])
    name = _name(event.request.form.get("name"))
    if room is None or name is None:
        return {"error": "room and name are letters, digits, - and _ (1-40)"}, 400
    try:
        _, delivered = broker.publish(
            f"room:{room}", {"name": name}, event="wave", return_delivery=True
        )
    except gsse.BrokerUnavailable:
        return {"error": "the room is unavailable for a moment; try again"}, 503
    return {"delivered": delivered}, 200


@app.route("/rooms/<room>/who")
def who(event: Event) -> tuple[dict[str, object], int]:
    room = _name(event.path_params["room"])
    if room is None:
        return {"error": "room names are letters, digits, - and _ (1-40)"}, 404
    channel = f"room:{room}"
    return {
        "online": broker.presence(channel),
        "subscribers": broker.subscribers(channel),
    }, 200


if __name__ == "__main__":
    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
