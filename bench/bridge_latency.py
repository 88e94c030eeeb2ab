"""Plain-GET latency while stream callbacks do CPU work, by where they run.

Usage::

    python bench/bridge_latency.py                    # prints a Markdown table
    python bench/bridge_latency.py --append bench/RESULTS.md

A gsse server runs in a child process pinned to CPU 0 (``gsse run``, the
app below). For each case, four streams start a callback that works for
``--work`` seconds; meanwhile this process, on CPU 1, sends ``--requests``
GETs to ``/ping``, due one every 10 ms on one keep-alive connection, and
times each from when it was due. The cases:

- ``idle``: no callback working (the baseline);
- ``threads, C (pbkdf2)``: ``blocking=True`` callbacks in ``hashlib``,
  which releases the GIL;
- ``threads, Python``: ``blocking=True`` callbacks in a pure-Python loop,
  which holds the GIL between the interpreter's switches (every 5 ms);
- ``greenlets, Python``: the same loop as plain callbacks, the mistake the
  bridge exists for: it never yields, so the event loop stops.

Every wait is bounded and the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {
    "idle": None,
    "threads, C (pbkdf2)": "/work?kind=c&blocking=1",
    "threads, Python": "/work?kind=py&blocking=1",
    "greenlets, Python": "/work?kind=py&blocking=0",
}

# -- the app (served by ``gsse run bridge_latency:app`` in the child) -------
from gsse import App  # noqa: E402
from gsse import Event  # noqa: E402
from gsse import SSEWriter  # noqa: E402

app = App()


def spin(seconds: float, kind: str) -> int:
    """Busy work for ``seconds``: C code (GIL released) or Python bytecode."""
    end = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < end:
        if kind == "c":
            hashlib.pbkdf2_hmac("sha256", b"secret", b"salt", 20_000)
        else:
            sum(i * i for i in range(20_000))
        rounds += 1
    return rounds


@app.route("/ping")
def ping(event: Event) -> str:
    return "pong"


@app.route("/work")
def work(event: Event) -> None:
    kind = event.request.args.get("kind", "py")
    seconds = float(event.request.args.get("seconds", "3"))

    def callback(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("started")
            time.sleep(0.01)  # yields (patched) so "started" goes out first
            writer.send_event(str(spin(seconds, kind)), event="done")

    event.start_sse()
    event.set_stream_callback(
        callback, blocking=event.request.args.get("blocking") == "1"
    )


# -- the driver ---------------------------------------------------------------
from benchprocs import free_port  # noqa: E402
from benchprocs import stop  # noqa: E402
from benchprocs import wait_port  # noqa: E402


def start_server(port: int) -> subprocess.Popen[bytes]:
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "gsse", "run"]
    cmd += ["bridge_latency:app", "--port", str(port), "--threads", "4"]
    cmd += ["--log-level", "warning", "--graceful-timeout", "1"]
    proc = subprocess.Popen(cmd, cwd=HERE)
    try:
        wait_port(port, proc, "the server", 20)
    except RuntimeError:
        stop(proc)
        raise
    return proc


def open_workers(port: int, path: str, count: int, work: float) -> list[socket.socket]:
    """Start ``count`` working streams; return once they said "started".

    Greenlet callbacks that never yield run one after another (each stops
    the loop), so only the first is waited for.
    """
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET {path}&seconds={work} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
        socks.append(sock)
    for sock in socks if "blocking=1" in path else socks[:1]:
        seen = b""
        deadline = time.monotonic() + 10
        while b"started" not in seen and time.monotonic() < deadline:
            seen += sock.recv(4096)
    return socks


def time_pings(port: int, requests: int) -> list[float]:
    """``requests`` GETs due one per 10 ms; each one's latency in ms.

    Latency counts from when a request was due, so requests held up behind
    a stalled one count their wait too (no coordinated omission).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    start = time.perf_counter()
    for i in range(requests):
        due = start + i * 0.01
        time.sleep(max(0.0, due - time.perf_counter()))
        conn.request("GET", "/ping")
        conn.getresponse().read()
        latencies.append((time.perf_counter() - due) * 1000)
    conn.close()
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--work", type=float, default=3.0, help="seconds per callback")
    parser.add_argument("--append", metavar="FILE", help="append the report to FILE")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    port = free_port()
    server = start_server(port)
    rows = []
    try:
        for name, path in CASES.items():
            socks = open_workers(port, path, 4, args.work) if path else []
            latencies = time_pings(port, args.requests)
            for sock in socks:
                sock.close()
            rows.append(
                (name, pct(latencies, 0.5), pct(latencies, 0.99), max(latencies))
            )
            print(
                f"{name}: p50 {rows[-1][1]:.2f} ms p99 {rows[-1][2]:.2f} ms",
                file=sys.stderr,
            )
            time.sleep(args.work)  # let the abandoned callbacks finish
    finally:
        stop(server)
    command = "python bench/bridge_latency.py" + (
        f" --append {args.append}" if args.append else ""
    )
    base = rows[0][2]
    lines = [
        "## Thread-pool bridge: /ping latency next to CPU-bound callbacks",
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d')}: four callbacks working"
        f" {args.work:g} s each while {args.requests} GETs go to /ping, due one per"
        " 10 ms and timed from when due; server on CPU 0 (`--threads 4`),"
        " client on CPU 1.",
        "",
        "| callbacks | /ping p50 ms | /ping p99 ms | max ms | p99 vs idle |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p50, p99, worst in rows:
        lines.append(
            f"| {name} | {p50:.2f} | {p99:.2f} | {worst:.2f} | {p99 / base:.1f}× |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
