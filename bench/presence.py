"""Presence at 10 000 streams: query cost, join and leave cost, both backends.

Usage::

    python bench/presence.py                      # 10 000 streams, 50 queries
    python bench/presence.py --streams 2000 --json /tmp/p.json

This script starts a ``redis-server`` on a free port (no persistence) and
two gsse servers, ``gsse run presence:app`` with ``--broker memory://`` and
with ``--broker redis://...`` (the app below). For each backend in turn
(so both see the same machine load) it

1. opens ``--streams`` real SSE connections, each a member of the channel
   ``room`` with ``presence={"user": "u<i>"}``, and times until the
   server's ``subscribers("room")`` counts them all (joins/s, with the
   server's CPU time and, on Redis, Redis commands and CPU per join);
2. asks ``presence("room")`` ``--queries`` times through the server
   (``GET /who``: the call itself, timed inside the server, and the HTTP
   round trip) and, on Redis, directly from this process with a broker of
   its own (one ``EVALSHA``, as another process would);
3. closes every stream and times until ``subscribers("room")`` is 0.

The servers run on CPU 0, Redis and this process on CPU 1. Every wait is
bounded; the child processes are stopped by their PIDs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# -- the app (served by ``gsse run presence:app`` in the child) -------------
import gsse  # noqa: E402
from gsse import App  # noqa: E402
from gsse import Event  # noqa: E402

app = App()
_broker: gsse.Broker | None = None


def _the_broker() -> gsse.Broker:
    global _broker
    if _broker is None:
        _broker = gsse.Broker.from_url(history=100)
    return _broker


@app.route("/sub")
def sub(event: Event) -> None:
    event.start_sse()
    user = event.request.args["user"]
    event.subscribe(_the_broker(), "room", presence={"user": user})


@app.route("/who")
def who(event: Event) -> dict[str, Any]:
    broker = _the_broker()
    started = time.perf_counter()
    members = broker.presence("room")
    took = time.perf_counter() - started
    return {"members": len(members), "seconds": took}


@app.route("/count")
def count(event: Event) -> dict[str, Any]:
    started = time.perf_counter()
    n = _the_broker().subscribers("room")
    return {"subscribers": n, "seconds": time.perf_counter() - started}


@app.route("/cpu")
def cpu(event: Event) -> dict[str, float]:
    times = os.times()
    return {"cpu": times.user + times.system}


# -- the load (this process) -------------------------------------------------
from benchprocs import free_port  # noqa: E402
from benchprocs import stop  # noqa: E402
from benchprocs import wait_port  # noqa: E402


def get(port: int, path: str) -> dict[str, Any]:
    import requests

    reply = requests.get(f"http://127.0.0.1:{port}{path}", timeout=60)
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def wait_count(port: int, n: int, limit: float = 300) -> float:
    """Seconds until the server's subscribers("room") is ``n`` (bounded)."""
    import gevent

    started = time.monotonic()
    while get(port, "/count")["subscribers"] != n:
        if time.monotonic() - started > limit:
            raise RuntimeError(f"subscribers never reached {n} in {limit} s")
        gevent.sleep(0.02)
    return time.monotonic() - started


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def redis_stats(client: Any) -> tuple[float, int]:
    """Redis's CPU seconds and commands served so far."""
    cpu_info = client.info("cpu")
    calls = sum(v["calls"] for v in client.info("commandstats").values())
    return float(cpu_info["used_cpu_sys"]) + float(cpu_info["used_cpu_user"]), calls


def open_streams(port: int, n: int) -> list[socket.socket]:
    import gevent

    socks: list[socket.socket] = []

    def one(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        request = f"GET /sub?user=u{i} HTTP/1.1\r\nHost: bench\r\n\r\n"
        sock.sendall(request.encode())
        socks.append(sock)

    for start in range(0, n, 500):
        gevent.joinall(
            [gevent.spawn(one, i) for i in range(start, min(n, start + 500))]
        )
    return socks


def run_backend(name: str, port: int, url: str, args: Any) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url) if url.startswith("redis") else None
    result: dict[str, Any] = {"backend": name, "streams": args.streams}
    # 1. Joins.
    cpu0 = get(port, "/cpu")["cpu"]
    r0 = redis_stats(client) if client else (0.0, 0)
    started = time.monotonic()
    socks = open_streams(port, args.streams)
    wait_count(port, args.streams)
    joined = time.monotonic() - started
    cpu1 = get(port, "/cpu")["cpu"]
    r1 = redis_stats(client) if client else (0.0, 0)
    result["joins_per_s"] = args.streams / joined
    result["server_cpu_us_per_join"] = (cpu1 - cpu0) / args.streams * 1e6
    if client:
        result["redis_cpu_us_per_join"] = (r1[0] - r0[0]) / args.streams * 1e6
        result["redis_commands_per_join"] = (r1[1] - r0[1]) / args.streams
    # 2. Queries.
    inside, http = [], []
    for _ in range(args.queries):
        started = time.perf_counter()
        reply = get(port, "/who")
        http.append(time.perf_counter() - started)
        inside.append(reply["seconds"])
        assert reply["members"] == args.streams, reply
    result["presence_ms_p50"] = pct(inside, 0.5) * 1000
    result["presence_ms_p99"] = pct(inside, 0.99) * 1000
    result["who_http_ms_p50"] = pct(http, 0.5) * 1000
    counts = [get(port, "/count")["seconds"] for _ in range(args.queries)]
    result["subscribers_ms_p50"] = pct(counts, 0.5) * 1000
    if client:
        other = gsse.Broker.from_url(url)
        try:
            before = client.info("commandstats").get("cmdstat_evalsha", {})
            direct = []
            for _ in range(args.queries):
                started = time.perf_counter()
                assert len(other.presence("room")) == args.streams
                direct.append(time.perf_counter() - started)
            after = client.info("commandstats")["cmdstat_evalsha"]
            result["direct_presence_ms_p50"] = pct(direct, 0.5) * 1000
            result["round_trips_per_query"] = (
                after["calls"] - before.get("calls", 0)
            ) / args.queries
            usec = after["usec"] - before.get("usec", 0)
            result["redis_ms_per_query"] = usec / args.queries / 1000
        finally:
            other.close()
    # 3. Leaves.
    cpu0 = get(port, "/cpu")["cpu"]
    started = time.monotonic()
    for sock in socks:
        sock.close()
    wait_count(port, 0)
    left = time.monotonic() - started
    result["leaves_per_s"] = args.streams / left
    result["server_cpu_us_per_leave"] = (
        (get(port, "/cpu")["cpu"] - cpu0) / args.streams * 1e6
    )
    if client:
        client.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from gevent import monkey

    monkey.patch_all()
    directory = tempfile.mkdtemp(prefix="gsse-presence-")
    redis_port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    cmd = ["taskset", "-c", "1", binary, "--port", str(redis_port)]
    cmd += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", directory]
    redis_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    procs = [redis_proc]
    results = []
    try:
        wait_port(redis_port, redis_proc, "redis-server")
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        for name, url in (("memory", "memory://"), ("redis", redis_url)):
            port = free_port()
            cmd = ["taskset", "-c", "0", sys.executable, "-m", "gsse", "run"]
            cmd += ["presence:app", "--port", str(port), "--broker", url]
            cmd += ["--log-level", "warning", "--graceful-timeout", "1"]
            server = subprocess.Popen(cmd, cwd=HERE)
            procs.append(server)
            wait_port(port, server, "gsse")
            results.append(run_backend(name, port, url, args))
            stop(server)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(directory, ignore_errors=True)
    keys = sorted({k for r in results for k in r} - {"backend", "streams"})
    print(
        f"| measure ({args.streams} streams) | "
        + " | ".join(r["backend"] for r in results)
        + " |"
    )
    print("|---|" + "---|" * len(results))
    for key in keys:
        cells = [f"{r[key]:,.2f}" if key in r else "-" for r in results]
        print(f"| {key} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
