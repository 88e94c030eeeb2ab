"""Publish-to-deliver latency on ``redis://`` by the number of live channels.

Usage::

    python bench/redis_channels.py                       # 1, 1000, 20000 channels
    python bench/redis_channels.py --channels 1,1000 --events 300 --json /tmp/r.json

This script starts its own ``redis-server`` on a free port (no persistence)
and one gsse server (``gsse run redis_channels:app --broker redis://...``,
the app below). For each channel count it opens real streams to that
server: every channel has exactly one subscriber, and each stream carries
up to 50 channels (20 000 one-channel streams would need 40 000 file
descriptors here), so 20 000 channels are 400 streams. Once every stream is
live (a probe event reached each one), this process publishes ``--events``
events at ``--rate`` per second, each to a random live channel, with the
wall-clock time in its data, and measures

- delivery latency: from just before ``publish`` to the event read from
  the stream's socket (same machine, same clock);
- the ``publish`` call itself (it waits for Redis, so it shows how busy
  Redis's single thread is);
- Redis's CPU time during the run, per event.

The server runs on CPU 0, Redis and this process on CPU 1. Every wait is
bounded; both child processes are stopped by their PIDs. To measure
another gsse (for example an older commit), put its source first on
``PYTHONPATH``: the server and the publisher both import ``gsse`` from it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Channels per stream (each channel still has one subscriber).
PER_STREAM = 50

# -- the app (served by ``gsse run redis_channels:app`` in the child) -------
import gsse  # noqa: E402
from gsse import App  # noqa: E402
from gsse import Event  # noqa: E402

app = App()
_broker: gsse.Broker | None = None


@app.route("/sub")
def sub(event: Event) -> None:
    global _broker
    if _broker is None:
        _broker = gsse.Broker.from_url(history=100)
    event.start_sse()
    event.subscribe(_broker, *event.request.args.getlist("c"))


# -- the load (this process) -------------------------------------------------
DATA = re.compile(rb"data: (\{[^\n]*\})\n")


from benchprocs import free_port  # noqa: E402
from benchprocs import stop  # noqa: E402
from benchprocs import wait_port  # noqa: E402


def start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    cmd = ["taskset", "-c", "1", binary, "--port", str(port), "--bind", "127.0.0.1"]
    cmd += ["--save", "", "--appendonly", "no", "--dir", directory]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_port(port, proc, "redis-server")
    return proc


def start_server(port: int, url: str) -> subprocess.Popen[bytes]:
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "gsse", "run"]
    cmd += ["redis_channels:app", "--port", str(port), "--broker", url]
    cmd += ["--log-level", "warning", "--graceful-timeout", "1"]
    proc = subprocess.Popen(cmd, cwd=HERE)
    wait_port(port, proc, "gsse")
    return proc


class Stream:
    """One SSE connection carrying some channels; records what arrives."""

    def __init__(self, port: int, channels: list[str]) -> None:
        self.channels = channels
        query = "&".join(f"c={c}" for c in channels)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        request = f"GET /sub?{query} HTTP/1.1\r\nHost: bench\r\n\r\n"
        self.sock.sendall(request.encode())
        self.buffer = b""
        self.probed = False
        self.arrived: dict[int, float] = {}

    def read_forever(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            now = time.time()
            self.buffer += data
            end = self.buffer.rfind(b"\n\n")
            if end < 0:
                continue
            complete, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
            for match in DATA.finditer(complete):
                item = json.loads(match.group(1))
                if "probe" in item:
                    self.probed = True
                else:
                    self.arrived[item["i"]] = now


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run_case(
    port: int, url: str, channels: int, events: int, rate: float
) -> dict[str, Any]:
    import gevent
    import redis

    names = [f"c{i}" for i in range(channels)]
    groups = [names[i : i + PER_STREAM] for i in range(0, channels, PER_STREAM)]
    streams = [Stream(port, group) for group in groups]
    readers = [gevent.spawn(s.read_forever) for s in streams]
    publisher = gsse.Broker.from_url(url, history=100)
    client = redis.Redis.from_url(url)
    try:
        # 1. Every stream is live once a probe published after it subscribed
        # reached it (a probe sent too early is lost: no Last-Event-ID).
        started = time.monotonic()
        while time.monotonic() - started < 300:
            waiting = [s for s in streams if not s.probed]
            if not waiting:
                break
            for stream in waiting:
                publisher.publish(stream.channels[-1], {"probe": 1})
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not all(s.probed for s in waiting):
                gevent.sleep(0.05)
        ready = time.monotonic() - started
        if not all(s.probed for s in streams):
            raise RuntimeError(f"streams not live after {ready:.0f} s")
        # 2. Publish at a steady rate to random channels; time each event.
        owner = {name: s for s in streams for name in s.channels}
        rng = random.Random(7)
        sent: dict[int, tuple[Stream, float]] = {}
        publish_ms = []
        cpu_before = redis_cpu(client)
        begin = time.perf_counter()
        for i in range(events):
            due = begin + i / rate
            gevent.sleep(max(0.0, due - time.perf_counter()))
            channel = rng.choice(names)
            t0 = time.perf_counter()
            stamp = time.time()
            publisher.publish(channel, {"i": i, "t": stamp})
            publish_ms.append((time.perf_counter() - t0) * 1000)
            sent[i] = (owner[channel], stamp)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(i in stream.arrived for i, (stream, _) in sent.items()):
                break
            gevent.sleep(0.05)
        cpu = redis_cpu(client) - cpu_before
        latencies = [
            (stream.arrived[i] - stamp) * 1000
            for i, (stream, stamp) in sent.items()
            if i in stream.arrived
        ]
    finally:
        client.close()
        publisher.close()
        for stream in streams:
            stream.sock.close()
        gevent.joinall(readers, timeout=10)
    return {
        "channels": channels,
        "streams": len(streams),
        "ready_s": round(ready, 1),
        "events": events,
        "delivered": len(latencies),
        "p50_ms": round(pct(latencies, 0.5), 2),
        "p99_ms": round(pct(latencies, 0.99), 2),
        "max_ms": round(max(latencies, default=0.0), 2),
        "publish_p50_ms": round(pct(publish_ms, 0.5), 2),
        "publish_p99_ms": round(pct(publish_ms, 0.99), 2),
        "redis_cpu_ms_per_event": round(cpu * 1000 / events, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", default="1,1000,20000")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = parser.parse_args()
    from gevent import monkey

    monkey.patch_all()
    os.sched_setaffinity(0, {1})
    redis_port, port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        redis_proc = start_redis(redis_port, directory)
        try:
            server = start_server(port, url)
            try:
                for count in [int(c) for c in args.channels.split(",")]:
                    rows.append(run_case(port, url, count, args.events, args.rate))
                    print(json.dumps(rows[-1]), file=sys.stderr)
            finally:
                stop(server)
        finally:
            stop(redis_proc)
    version = getattr(gsse, "__version__", "?")
    print(f"gsse {version} from {Path(gsse.__file__).parent}")
    print()
    print("| channels | streams | delivered | p50 ms | p99 ms | max ms |"
          " publish p50 ms | publish p99 ms | Redis CPU ms/event |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['channels']} | {r['streams']} | {r['delivered']}/{r['events']}"
            f" | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']}"
            f" | {r['publish_p50_ms']} | {r['publish_p99_ms']}"
            f" | {r['redis_cpu_ms_per_event']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
