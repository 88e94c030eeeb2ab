"""A live price board: a compacted channel, a snapshot on open, slow clients kept.

Install:   pip install gsse
Run it:    gsse run examples.price_board:app      (or: python examples/price_board.py)
Then open: http://127.0.0.1:8000/   (or: curl -N localhost:8000/prices)
Slow:      python examples/price_board.py --slow-client http://127.0.0.1:8000/prices
Port:      --port 9000, or GSSE_PORT=9000 for either command

One greenlet moves made-up prices and publishes each change to the
``prices`` channel with ``key=<symbol>``: a newer price of a symbol
supersedes the older one. A page opens ``/prices`` with ``snapshot=True``,
so it shows every symbol's current price at once, then live changes. The
``--slow-client`` above reads the same stream deliberately slowly (a few KB
a second, like a phone on a bad network): once its buffer is full, the
prices it has not read yet are replaced by newer ones instead of piling
up, so it stays connected and every line it prints shows current prices,
with the updates it never needed counted as skipped. ``POST /feed`` with
``on=0`` or ``on=1`` pauses or resumes the market; ``/quotes`` is the
current board as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import time
from urllib.parse import urlsplit

import gevent

import gsse
from gsse import App
from gsse import Event

app = App()

#: memory:// by default; --broker redis://... (GSSE_BROKER) to share it.
broker = gsse.Broker.from_url(history=1000)

CHANNEL = "prices"
SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "NFLX")
#: Price changes a second (env PRICE_BOARD_RATE), spread over the symbols.
RATE = float(os.environ.get("PRICE_BOARD_RATE", "100"))

#: The market: symbol -> {"symbol", "price", "seq"} (seq counts its changes).
quotes: dict[str, dict[str, object]] = {}
running = True
_feed: gevent.Greenlet | None = None

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse price board</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem 3rem; }
  table { border-collapse: collapse; min-width: 22rem; }
  td, th { padding: .3rem .8rem; border-bottom: 1px solid #d0d7de; text-align: right; }
  td:first-child, th:first-child { text-align: left; font-weight: 600; }
  .up { color: #1a7f37; } .down { color: #cf222e; }
</style>
<h1>Prices</h1>
<table><thead><tr><th>symbol</th><th>price</th><th>changes</th></tr></thead>
<tbody id="board"></tbody></table>
<p id="status">connecting…</p>
<script>
  window.updates = 0;
  const rows = {};
  function row(symbol) {
    if (!rows[symbol]) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td class=price></td><td class=seq></td>";
      tr.cells[0].textContent = symbol;
      document.getElementById("board").append(tr);
      rows[symbol] = tr;
    }
    return rows[symbol];
  }
  window.board = () => Object.fromEntries(Object.entries(rows).map(
    ([s, tr]) => [s, tr.querySelector(".price").textContent]));
  const source = new EventSource("/prices");
  source.onopen = () => { document.getElementById("status").textContent = "live"; };
  source.onerror = () => {
    document.getElementById("status").textContent = "reconnecting…";
  };
  source.addEventListener("price", (e) => {
    const quote = JSON.parse(e.data);
    const cell = row(quote.symbol).querySelector(".price");
    const before = parseFloat(cell.textContent);
    cell.textContent = quote.price.toFixed(2);
    cell.className = "price " + (quote.price >= before ? "up" : "down");
    row(quote.symbol).querySelector(".seq").textContent = quote.seq;
    window.updates += 1;
  });
</script>
"""


def move_prices() -> None:
    """Publish ``RATE`` price changes a second, forever (one greenlet)."""
    for symbol in SYMBOLS:
        quotes[symbol] = {"symbol": symbol, "price": 100.0, "seq": 0}
        broker.publish(CHANNEL, quotes[symbol], event="price", key=symbol)
    tick = 0.05  # seconds; each tick publishes the changes due in it
    due = 0.0
    while True:
        due += RATE * tick
        while running and due >= 1:
            due -= 1
            symbol = random.choice(SYMBOLS)
            old = quotes[symbol]
            price = round(max(1.0, float(old["price"]) * random.gauss(1, 0.002)), 2)
            quote = {"symbol": symbol, "price": price, "seq": int(old["seq"]) + 1}
            try:
                broker.publish(CHANNEL, quote, event="price", key=symbol)
                quotes[symbol] = quote
            except gsse.BrokerUnavailable:
                break  # the broker's backend is away; try again next tick
        due = min(due, 1.0)
        gevent.sleep(tick)


def ensure_feed() -> None:
    """Start the market with the first request, once per process."""
    global _feed
    if _feed is None or _feed.dead:
        _feed = gevent.spawn(move_prices)
        while len(quotes) < len(SYMBOLS) and not _feed.dead:
            gevent.sleep(0.01)


@app.route("/")
def index(event: Event) -> str:
    ensure_feed()
    return PAGE


@app.route("/prices")
def prices(event: Event) -> None:
    ensure_feed()
    event.start_sse(retry=1000)
    event.subscribe(broker, CHANNEL, snapshot=True)


@app.route("/quotes")
def current(event: Event) -> dict[str, object]:
    ensure_feed()
    return dict(quotes)


@app.route("/feed", methods=["POST"])
def feed(event: Event) -> dict[str, bool]:
    global running
    ensure_feed()
    running = event.request.form.get("on", "1") != "0"
    return {"running": running}


# -- the deliberately slow client ----------------------------------------------
def slow_client(url: str, rate: float, seconds: float, as_json: bool) -> None:
    """Read ``url`` at ``rate`` bytes a second and print the board each second."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no hidden slack
    sock.settimeout(30)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    request = f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n"
    sock.sendall(request.encode())
    board: dict[str, dict[str, object]] = {}
    received = skipped = backwards = 0
    tail = b""
    started = shown = time.monotonic()
    while not seconds or time.monotonic() - started < seconds:
        data = sock.recv(max(1, int(rate / 10)))
        if not data:
            print("the server closed the stream", flush=True)
            return
        lines = (tail + data).split(b"\n")
        tail = lines.pop()
        for line in lines:
            if not line.startswith(b"data: {"):
                continue
            quote = json.loads(line[6:])
            before = board.get(quote["symbol"])
            seen = int(before["seq"]) if before else -1
            if quote["seq"] <= seen:
                backwards += 1  # never happens: an older price is never sent
                continue
            skipped += quote["seq"] - seen - 1 if before else 0
            received += 1
            board[quote["symbol"]] = quote
        if time.monotonic() - shown >= 1:
            shown = time.monotonic()
            if as_json:
                prices = {s: q["price"] for s, q in board.items()}
                line_out = {"prices": prices, "received": received}
                line_out.update(skipped=skipped, backwards=backwards)
                print(json.dumps(line_out), flush=True)
            else:
                text = " ".join(f"{s} {q['price']:.2f}" for s, q in board.items())
                print(f"{text} | {received} received, {skipped} skipped", flush=True)
        time.sleep(0.1)
    sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="the price board, or a slow client")
    parser.add_argument("--slow-client", metavar="URL", help="read URL slowly")
    parser.add_argument("--rate", type=float, default=3000, help="bytes a second")
    parser.add_argument("--seconds", type=float, default=0, help="0: until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args()
    if args.slow_client:
        try:
            slow_client(args.slow_client, args.rate, args.seconds, args.json)
        except KeyboardInterrupt:
            pass
        return
    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))


if __name__ == "__main__":
    sys.exit(main())
