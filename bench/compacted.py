"""Broadcast on a keyed (compacted) channel with 10% slow subscribers.

Usage::

    python bench/compacted.py                          # keyed, then unkeyed
    python bench/compacted.py --subscribers 50 --events 10000 --size 1000
    python bench/compacted.py --modes unkeyed --json /tmp/c.json

One gsse server (a child process running this file with ``--serve``, on
``memory://``, pinned to CPU 0) serves ``/sub`` (the channel ``prices``)
and ``/publish``, which publishes ``--events`` events as fast as it can,
each to one of ``--keys`` keys (``keyed``) or without a key (``unkeyed``),
padded to ``--size`` bytes. This process (CPU 1) holds the subscribers on
one ``select`` loop: 90% read as fast as they can, 10% are *slow*: a 4 KiB
receive buffer and at most ``--slow-rate`` bytes a second, so they fall far
behind. Once everything is published, the slow ones read at full speed and
a last ``end`` event tells whether each is still connected and which value
of each key it saw last. Reported, per mode:

- delivered events/s: events the fast subscribers received (and all
  subscribers), divided by the time from the publish to the last fast one
  receiving ``end``; on a keyed channel a "fast" subscriber that lags
  (this process is one Python reading them all) is conflated too;
- server CPU µs per delivered event (fast and slow), and per event handed
  to a subscriber (published × subscribers: comparable across modes);
- slow subscribers still connected, and whether they saw each key's newest
  value (keyed mode: conflation keeps them; unkeyed: they overflow).

To compare another gsse (e.g. before a change), put its source first on
``PYTHONPATH``; the server imports ``gsse`` from there. Every wait is
bounded and the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

CHANNEL = "prices"
END = b"data: end"


# -- the server (child process) ----------------------------------------------
def serve(port: int) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    import gsse
    from gsse import App
    from gsse import Event

    broker = gsse.Broker.from_url("memory://", history=1000)
    app = App()

    @app.route("/sub")
    def sub(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, CHANNEL)

    def publish(events: int, keys: int, keyed: bool, size: int) -> None:
        pad = "x" * size
        for n in range(events):
            k = f"k{n % keys}"
            data = f'{{"k":"{k}","n":{n},"pad":"{pad}"}}'
            if keyed:
                broker.publish(CHANNEL, data, key=k)
            else:
                broker.publish(CHANNEL, data)
            if n % 20 == 19:
                gevent.sleep(0)  # let the loop send, as a real publisher would
        broker.publish(CHANNEL, "end")

    @app.route("/publish")
    def start(event: Event) -> str:
        args = event.request.args
        gevent.spawn(
            publish,
            int(args["events"]),
            int(args["keys"]),
            args["keyed"] == "1",
            int(args["size"]),
        )
        return "ok"

    @app.route("/stats")
    def stats(event: Event) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "live": broker.live_subscribers(CHANNEL),
            "overflow": gsse.metrics.STATS.disconnects.get("overflow", 0),
        }

    server = gsse.Server(app, "127.0.0.1", port)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(graceful_timeout=0))
    server.serve_forever()


# -- the subscribers (this process) -------------------------------------------
class Client:
    """One raw HTTP/1.0 stream (no chunks to parse): counts events, last values."""

    def __init__(self, port: int, slow: bool) -> None:
        self.slow = slow
        self.sock = socket.socket()
        if slow:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET /sub HTTP/1.0\r\nHost: bench\r\n\r\n")
        self.sock.setblocking(False)
        self.events = 0
        self.tail = b""
        self.last: dict[str, int] = {}
        self.ended = False
        self.closed = False
        self.done_at = 0.0

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, most: int) -> int:
        try:
            data = self.sock.recv(most)
        except BlockingIOError:
            return 0
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return 0
        text = self.tail + data
        cut = text.rfind(b"\n")
        whole, self.tail = text[: cut + 1], text[cut + 1 :]
        for line in whole.split(b"\n"):
            if not line.startswith(b"data: "):
                continue
            self.events += 1
            if line == END:
                self.ended = True
                self.done_at = time.monotonic()
            elif self.slow:
                k = line[line.index(b'"k":"') + 5 : line.index(b'","n"')]
                n = int(line[line.index(b'"n":') + 4 : line.index(b',"pad"')])
                self.last[k.decode()] = n
        return len(data)


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        body = r.read().decode()
    return json.loads(body) if body.startswith("{") else body


def run_mode(port: int, args: argparse.Namespace, keyed: bool) -> dict[str, Any]:
    slow_count = max(1, args.subscribers // 10)
    clients = [Client(port, slow=i < slow_count) for i in range(args.subscribers)]
    deadline = time.monotonic() + 30
    while get(port, "/stats")["live"] < len(clients):
        if time.monotonic() > deadline:
            raise RuntimeError("subscribers did not go live in 30 s")
        time.sleep(0.05)
    before = get(port, "/stats")
    started = time.monotonic()
    get(
        port,
        f"/publish?events={args.events}&keys={args.keys}"
        f"&keyed={int(keyed)}&size={args.size}",
    )
    budget = {c: 0.0 for c in clients if c.slow}
    tick = time.monotonic()
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        fast_done = all(c.ended or c.closed for c in clients if not c.slow)
        for c in budget:  # slow ones read --slow-rate bytes/s until the end
            budget[c] = 1e9 if fast_done else budget[c] + (now - tick) * args.slow_rate
        tick = now
        open_ = [c for c in clients if not c.closed and not c.ended]
        if not open_:
            break
        readable = [c for c in open_ if not c.slow or budget[c] >= 1]
        ready, _, _ = select.select(readable, [], [], 0.01)
        for c in ready:
            if c.slow:
                if budget[c] >= 1:
                    budget[c] -= c.read(int(min(budget[c], 65536)))
            else:
                c.read(262144)
    after = get(port, "/stats")
    for c in clients:
        c.sock.close()
    fast = [c for c in clients if not c.slow]
    slow = [c for c in clients if c.slow]
    finished = max((c.done_at for c in fast if c.ended), default=time.monotonic())
    delivered = sum(c.events for c in clients)
    newest = {f"k{k}": max(range(k, args.events, args.keys)) for k in range(args.keys)}
    return {
        "mode": "keyed" if keyed else "unkeyed",
        "subscribers": len(clients),
        "slow": len(slow),
        "published": args.events,
        "fast_events_per_s": round(sum(c.events for c in fast) / (finished - started)),
        "delivered_per_s": round(delivered / (finished - started)),
        "seconds_to_end": round(finished - started, 2),
        "server_cpu_us_per_event": round(
            (after["cpu_s"] - before["cpu_s"]) / max(1, delivered) * 1e6, 2
        ),
        "server_cpu_us_per_handed": round(
            (after["cpu_s"] - before["cpu_s"])
            / ((args.events + 1) * len(clients))
            * 1e6,
            2,
        ),
        "fast_complete": sum(c.ended and c.events == args.events + 1 for c in fast),
        "slow_connected": sum(c.ended for c in slow),
        "slow_saw_newest": sum(c.ended and c.last == newest for c in slow),
        "slow_events_mean": round(sum(c.events for c in slow) / len(slow)),
        "overflow_disconnects": after["overflow"] - before["overflow"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--slow-rate", type=float, default=50_000, help="bytes/s")
    parser.add_argument("--modes", default="keyed,unkeyed")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, __file__, "--serve", str(port)]
    if os.path.exists("/usr/bin/taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, env=env)
    results = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(port, "/stats")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        for _ in range(args.repeat):
            for mode in args.modes.split(","):
                result = run_mode(port, args, keyed=mode == "keyed")
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
