"""Resumable runs under load: N concurrent runs of R tokens/s, one follower each.

Usage::

    make -C bench ssegen && python bench/runs_load.py            # 1000 runs, 50/s
    python bench/runs_load.py --backends memory --runs 200 --window 5   # quicker

For each backend (``memory://``, and ``redis://`` on a ``redis-server`` this
script starts on a free port, no persistence) one gsse server runs the app
below (``gsse run runs_load:app --broker URL``) pinned to CPU 0. It starts
``--runs`` runs whose producers send one token every ``1/--rate`` seconds
(``data:`` is the send time in microseconds, then text) and
``bench/ssegen`` (C, epoll, CPU 1 with Redis) opens one follower per run
(``/follow`` hands out the runs in turn). After ``--warmup`` seconds the
counters are reset and, over ``--window`` seconds, measured:

- tokens/s the producers sent (the server's own count) against the target;
- events/s the followers received, and their latency (send to receipt);
- the server's CPU (utime + stime of its process) per token, and Redis's.

Every wait is bounded; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- the app (served by ``gsse run runs_load:app`` in the child) ---------------
import gevent  # noqa: E402

import gsse  # noqa: E402
from gsse import App  # noqa: E402
from gsse import Event  # noqa: E402
from gsse.runs import RunWriter  # noqa: E402

app = App()
_state: dict[str, Any] = {"ids": [], "next": 0, "tokens": 0}
_runs: gsse.Runs | None = None


def _the_runs() -> gsse.Runs:
    global _runs
    if _runs is None:
        url = os.environ.get("GSSE_BROKER", "memory://")
        if url.startswith("memory"):  # room for every run's whole log
            url += "?max_history_events=20000000&max_history_bytes=4000000000"
        _runs = gsse.Runs(gsse.Broker.from_url(url), ttl=60)
    return _runs


def _tokens(writer: RunWriter, rate: float, seconds: float) -> None:
    period = 1.0 / rate
    due = time.monotonic()
    end = due + seconds
    while due < end and not writer.cancelled:
        writer.send_event(f"{int(time.time() * 1e6)} token", event="token")
        _state["tokens"] += 1
        due += period
        gevent.sleep(max(0.0, due - time.monotonic()))


@app.route("/start", methods=["POST"])
def start(event: Event) -> dict[str, Any]:
    args = event.request.args
    runs = _the_runs()
    rate, seconds = float(args["rate"]), float(args["seconds"])
    ids = [runs.start(_tokens, rate, seconds).id for _ in range(int(args["runs"]))]
    _state["ids"] = ids
    return {"started": len(ids)}


@app.route("/follow")
def follow(event: Event) -> None:
    ids = _state["ids"]
    run_id = ids[_state["next"] % len(ids)]
    _state["next"] += 1
    event.follow(_the_runs(), run_id)


@app.route("/stats")
def stats(event: Event) -> dict[str, Any]:
    return {"tokens": _state["tokens"]}


# -- the driver (this process) -------------------------------------------------
from benchprocs import free_port  # noqa: E402
from benchprocs import stop  # noqa: E402
from benchprocs import wait_port  # noqa: E402


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def get_json(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


class Generator:
    """``bench/ssegen`` on CPU 1 (see its header), one command at a time."""

    def __init__(self, port: int) -> None:
        binary = HERE / "ssegen"
        if not binary.exists():
            raise SystemExit("build the load generator first: make -C bench ssegen")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", str(binary), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._answer(10)

    def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the load generator did not answer in {timeout} s")
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def command(self, line: str, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout + 10)

    def stop(self) -> None:
        try:
            self.command("quit", 5)
        except (RuntimeError, OSError, ValueError):
            pass
        stop(self.proc)


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "gsse", "run", "runs_load:app"]
    cmd += ["--port", str(port), "--broker", url, "--log-level", "warning"]
    cmd += ["--graceful-timeout", "1"]
    server = subprocess.Popen(cmd, cwd=HERE)
    gen: Generator | None = None
    try:
        wait_port(port, server, "gsse")
        seconds = args.warmup + args.window + 10
        get_json(
            port, f"/start?runs={args.runs}&rate={args.rate}&seconds={seconds}", "POST"
        )
        gen = Generator(port)
        opened = gen.command(f"open {args.runs} /follow 60", 60)
        time.sleep(args.warmup)
        gen.command("reset")
        tokens0, cpu0 = get_json(port, "/stats")["tokens"], cpu_seconds(server.pid)
        redis0 = redis_cpu(url)
        started = time.monotonic()
        time.sleep(args.window)
        got = gen.command("stats")
        tokens1, cpu1 = get_json(port, "/stats")["tokens"], cpu_seconds(server.pid)
        redis1 = redis_cpu(url)
        elapsed = time.monotonic() - started
        tokens = tokens1 - tokens0
        return {
            "backend": url.split(":", 1)[0],
            "runs": args.runs,
            "target_tokens_per_s": args.runs * args.rate,
            "tokens_per_s": tokens / elapsed,
            "events_per_s": got["events"] / elapsed,
            "held": opened.get("held"),
            "p50_ms": got.get("lat_p50_ms"),
            "p99_ms": got.get("lat_p99_ms"),
            "server_cpu_us_per_token": 1e6 * (cpu1 - cpu0) / max(tokens, 1),
            "server_cpu_share": (cpu1 - cpu0) / elapsed,
            "redis_cpu_us_per_token": (
                None
                if redis0 is None or redis1 is None
                else 1e6 * (redis1 - redis0) / max(tokens, 1)
            ),
        }
    finally:
        if gen is not None:
            gen.stop()
        stop(server)


def redis_cpu(url: str) -> float | None:
    if not url.startswith("redis"):
        return None
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,redis")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for backend in args.backends.split(","):
            if backend == "memory":
                results.append(measure("memory://", args))
                continue
            redis_port = free_port()
            binary = shutil.which("redis-server") or "/usr/bin/redis-server"
            redis_cmd = ["taskset", "-c", "1", binary, "--port", str(redis_port)]
            redis_cmd += ["--save", "", "--appendonly", "no", "--dir", directory]
            redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
            try:
                wait_port(redis_port, redis_proc, "redis-server")
                results.append(measure(f"redis://127.0.0.1:{redis_port}/0", args))
            finally:
                stop(redis_proc)
    print("| backend | runs | target tokens/s | tokens/s sent | events/s received"
          " | p50 ms | p99 ms | server CPU µs/token | server CPU share"
          " | Redis CPU µs/token |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        redis_us = r["redis_cpu_us_per_token"]
        print(
            f"| {r['backend']} | {r['runs']} | {r['target_tokens_per_s']:.0f}"
            f" | {r['tokens_per_s']:.0f} | {r['events_per_s']:.0f}"
            f" | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_us_per_token']:.1f}"
            f" | {r['server_cpu_share']:.2f}"
            f" | {'-' if redis_us is None else f'{redis_us:.1f}'} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
