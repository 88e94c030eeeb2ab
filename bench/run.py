"""Compare gsse with sse-starlette, Flask on pywsgi and raw Node, in one run.

Usage::

    make -C bench run                 # or: make -C bench && python bench/run.py
    python bench/run.py --quick       # a smoke run: small numbers, seconds
    python bench/run.py --servers gsse,node --scenarios hold,fanout
    python bench/run.py --servers gsse --gsse-at main=/tmp/main   # before/after

Each server (``bench/servers/``) implements the same contract and runs alone,
pinned to CPU 0; the load comes from CPU 1: ``bench/ssegen`` (C, epoll) holds
the SSE connections and times every event from the timestamp in its data,
and ``wrk`` measures ``/ping``. Every scenario starts a fresh server. The
scenarios:

- ``hold``: 1k, 5k, 10k and as many idle streams as the file-descriptor limit
  allows, on a callback stream (``/idle``) and on a channel subscriber
  (``/sub``): RSS per stream (the slope), connect rate, ``/ping`` latency;
- ``fanout``: 1000 subscribers, one in-process publisher ramped until
  delivery falls behind: the highest delivered events/s with p99 < 1 s, and
  latency and server CPU per event at 10k events/s;
- ``ticks``: 1000 ``send; time.sleep(0.1)`` loops with ``/ping`` under load
  (and gsse's ``blocking=True`` variant, in the thread pool);
- ``first``: fresh connections, each closed at its first event: time to
  first event and streams opened per second (50 clients), and the time to
  first event of one client opening one stream after another;
- ``ping``: plain ``GET /ping`` flat out on keep-alive connections (wrk),
  nothing else running;
- ``fanout1``: ``fanout`` with a publisher that publishes one event per
  wake-up (sleeps between single publishes, never catching up in a burst);
- ``ramp``: 10,000 clients connecting at 2,000/s and held (a reconnect
  storm): connect to first event, p50 and p99.

Every wait is bounded; every process is stopped by its PID. Progress goes to
stderr, the tables (Markdown) to stdout, and all figures to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVERS_DIR = HERE / "servers"
GENERATOR = HERE / "ssegen"
SERVER_CPU = "0"
LOAD_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = 4

#: name -> the command that serves the contract on a port ({port}).
SERVERS: dict[str, list[str]] = {
    "gsse": [
        sys.executable,
        "-m",
        "gsse",
        "run",
        "gsse_app:app",
        "--port",
        "{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "1",
        # 1000 blocking=True tick loops each hold a pool thread while they
        # sleep: the pool must be that large (the default is 10).
        "--threads",
        "1100",
    ],
    "sse-starlette": [sys.executable, "starlette_app.py", "{port}"],
    "flask-pywsgi": [sys.executable, "flask_app.py", "{port}"],
    "node": ["node", "node_server.js", "{port}"],
}
SCENARIOS = ("ping", "hold", "fanout", "fanout1", "ticks", "first", "ramp")

#: Other gsse checkouts to compare, by server name (``gsse@LABEL``): the
#: same command with ``PYTHONPATH`` set to the checkout (``--gsse-at``).
GSSE_AT: dict[str, str] = {}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise this process's (and so its children's) fd limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_pid(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``: always by this process's PID."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class ServerProc:
    """One contract server on CPU 0, its output in a log file."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        args = [a.format(port=self.port) for a in SERVERS[name]]
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("GSSE_BROKER", None)
        if name in GSSE_AT:
            env["PYTHONPATH"] = GSSE_AT[name]
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *args],
            cwd=SERVERS_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.pid = self.proc.pid  # taskset execs the server: same PID
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start; see {self.log_path}")
            try:
                if self.get("/ping") == "pong":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} did not answer /ping in 30 s; see {self.log_path}")

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        stop_pid(self.proc)
        self._log.close()


class Generator:
    """``bench/ssegen`` on CPU 1, driven one command (one JSON answer) at a time."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, str(GENERATOR), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.max_fd = int(self._answer(10)["max_fd"])

    def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the load generator did not answer in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, line: str, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout + 10)

    def open(self, total: int, path: str, timeout: float) -> dict[str, Any]:
        return self.command(f"open {total} {path} {timeout}", timeout)

    def probe(self, seconds: float) -> dict[str, float]:
        """``/ping`` latency at a steady :data:`PROBE_RATE` (not flat out).

        The generator keeps reading its held streams meanwhile, so tick
        events are counted during the probe too.
        """
        line = f"probe /ping {PROBE_RATE} {seconds:g} {PROBE_CONNECTIONS}"
        return self.command(line, seconds + 5)

    def stop(self) -> None:
        try:
            self.command("quit", 5)
        except (RuntimeError, OSError, ValueError):
            pass
        stop_pid(self.proc, 5)


@contextmanager
def running(name: str, log_dir: Path) -> Iterator[tuple[ServerProc, Generator]]:
    server = ServerProc(name, log_dir)
    gen: Generator | None = None
    try:
        gen = Generator(server.port)
        yield server, gen
    finally:
        if gen is not None:
            gen.stop()
        server.stop()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}

#: ``/ping`` requests per second while latency is probed: a steady load, as
#: health checks and page requests are, so the latency is the server's and
#: not the queue a saturating client builds (wrk measures the rate flat out).
PROBE_RATE = 200
PROBE_CONNECTIONS = 4


def wrk_ping(port: int, seconds: float) -> dict[str, float]:
    """``/ping`` latency and rate from wrk, 10 connections, on the load CPU."""
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c10", f"-d{seconds:g}s"]
    cmd += ["--latency", "--timeout", "5s", f"http://127.0.0.1:{port}/ping"]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 30
    ).stdout
    result: dict[str, float] = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            result[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        result["rps"] = float(m.group(1))
    return result


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares KB per stream over (streams, RSS KB) points."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.quick: bool = args.quick
        self.log_dir = Path(args.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nofile = raise_nofile()
        self.ping_s = 1.0 if self.quick else 5.0
        self.results: dict[str, dict[str, Any]] = {}

    def record(self, server: str, key: str, value: Any) -> None:
        self.results.setdefault(server, {})[key] = value

    # -- 1. idle hold ------------------------------------------------------
    def hold(self, name: str) -> None:
        steps = [100, 300] if self.quick else [1000, 5000, 10000]
        for path, label in (("/idle", "callback"), ("/sub", "subscriber")):
            with running(name, self.log_dir) as (server, gen):
                top = min(self.nofile, gen.max_fd) - 100
                wanted = steps + ([] if self.quick else [top])
                base = server.rss_kb()
                rows: list[dict[str, Any]] = []
                points: list[tuple[int, int]] = []
                for n in wanted:
                    got = gen.open(n, path, 20 if self.quick else 120)
                    time.sleep(0.5 if self.quick else 2)
                    rss = server.rss_kb()
                    ping = gen.probe(self.ping_s)
                    ping["rps"] = wrk_ping(server.port, self.ping_s).get("rps", 0.0)
                    held = int(got["held"])
                    rate = got["opened"] / got["seconds"] if got["seconds"] else 0
                    row = {
                        "wanted": n,
                        "held": held,
                        "connect_per_s": round(rate),
                        "rss_kb": rss,
                        "ping": ping,
                        "gen_cpu_s": got["gen_cpu_s"],
                    }
                    rows.append(row)
                    points.append((held, rss))
                    log(
                        f"{name} hold {label} {held}/{n}: {rate:.0f} conn/s, "
                        f"RSS {rss / 1024:.1f} MiB, /ping p99 {ping.get('p99_ms')} ms"
                    )
                    if held < n * 0.99:
                        log(f"{name}: only {held} of {n} streams opened; stopping here")
                        break
                per = slope(points)
                self.record(
                    name,
                    f"hold_{label}",
                    {"base_rss_kb": base, "steps": rows, "kb_per_stream": per},
                )
                log(f"{name} hold {label}: {per:.2f} KB per stream (slope)")

    # -- 0. plain requests -------------------------------------------------
    def ping(self, name: str) -> None:
        with running(name, self.log_dir) as (server, _):
            result = wrk_ping(server.port, self.ping_s * 2)
            self.record(name, "ping", result)
            log(f"{name} /ping flat out: {result.get('rps', 0):.0f} req/s")

    # -- 2. fan-out --------------------------------------------------------
    def fanout1(self, name: str) -> None:
        self.fanout(name, single=True)

    def fanout(self, name: str, single: bool = False) -> None:
        subs = 100 if self.quick else 1000
        rates = [10, 50] if self.quick else [10, 20, 50, 100, 200, 300, 400]
        rates += [] if self.quick else [500, 600, 800, 1000, 1200]
        seconds = 1.0 if self.quick else 5.0
        with running(name, self.log_dir) as (server, gen):
            gen.open(subs, "/sub", 60)
            time.sleep(0.5)
            steps: list[dict[str, Any]] = []
            best = 0.0
            for rate in rates:
                expected = int(rate * seconds) * subs
                gen.command("reset")
                cpu0 = server.cpu_s()
                started = time.monotonic()
                query = f"rate={rate}&seconds={seconds}" + (
                    "&single=1" if single else ""
                )
                server.get(f"/publish?{query}")
                time.sleep(seconds)
                stats = self._drain(gen, expected, seconds + 10)
                elapsed = time.monotonic() - started
                cpu = server.cpu_s() - cpu0
                events = int(stats["events"])
                ok = events >= expected * 0.999 and 0 <= stats["lat_p99_ms"] < 1000
                step = {
                    "target_per_s": rate * subs,
                    "delivered": events,
                    "expected": expected,
                    "delivered_per_s": round(events / max(seconds, elapsed - 0.0)),
                    "lat_p50_ms": stats["lat_p50_ms"],
                    "lat_p99_ms": stats["lat_p99_ms"],
                    "server_cpu_s": round(cpu, 3),
                    "cpu_us_per_event": round(cpu / events * 1e6, 3)
                    if events
                    else None,
                    "gen_cpu_s": stats["gen_cpu_s"],
                    "kept_up": ok,
                }
                steps.append(step)
                log(
                    f"{name} fanout{'1' if single else ''} {rate * subs}/s: "
                    f"{events}/{expected} delivered, "
                    f"p50 {stats['lat_p50_ms']:.2f} ms p99 {stats['lat_p99_ms']:.2f} ms"
                    f", {step['cpu_us_per_event']} us CPU/event"
                    f"{'' if ok else ' - fell behind'}"
                )
                if not ok:
                    break
                best = rate * subs
            self.record(
                name,
                "fanout1" if single else "fanout",
                {"subscribers": subs, "steps": steps, "best": best},
            )

    def _drain(self, gen: Generator, expected: int, limit: float) -> dict[str, Any]:
        """Wait until every event arrived or none came for a second (bounded)."""
        deadline = time.monotonic() + limit
        last, still = -1, time.monotonic()
        while True:
            stats = gen.command("stats")
            if stats["events"] >= expected or time.monotonic() > deadline:
                return stats
            if stats["events"] != last:
                last, still = stats["events"], time.monotonic()
            elif time.monotonic() - still > 1.0:
                return stats
            time.sleep(0.2)

    # -- 3. tick loops -----------------------------------------------------
    def ticks(self, name: str) -> None:
        loops = 100 if self.quick else 1000
        paths = [("/tick", "ticks")]
        if name == "gsse" or name in GSSE_AT:
            paths.append(("/tickb", "ticks_blocking"))
        for path, key in paths:
            with running(name, self.log_dir) as (server, gen):
                got = gen.open(loops, path, 60)
                time.sleep(1)
                gen.command("reset")
                cpu0 = server.cpu_s()
                ping = gen.probe(self.ping_s * 2)
                stats = gen.command("stats")
                cpu = server.cpu_s() - cpu0
                per_s = stats["events"] / stats["seconds"]
                result = {
                    "loops": int(got["held"]),
                    "ticks_per_s": round(per_s),
                    "expected_per_s": loops * 10,
                    "lat_p50_ms": stats["lat_p50_ms"],
                    "lat_p99_ms": stats["lat_p99_ms"],
                    "ping": ping,
                    "server_cpu_pct": round(100 * cpu / stats["seconds"], 1),
                    "gen_cpu_s": stats["gen_cpu_s"],
                }
                self.record(name, key, result)
                log(
                    f"{name} {key}: {per_s:.0f} ticks/s of {loops * 10}, "
                    f"/ping p99 {ping.get('p99_ms')} ms"
                )

    # -- 4. time to first event -------------------------------------------
    def first(self, name: str) -> None:
        seconds = 2.0 if self.quick else 5.0
        with running(name, self.log_dir) as (server, gen):
            stats = gen.command(f"churn /tick {seconds} 50 1000000", seconds)
            # One client, one stream at a time: the latency of one fresh
            # stream, with no queue of others in front of it.
            alone = gen.command(f"churn /tick {seconds / 2} 1 1000000", seconds)
            rate = stats["first_events"] / stats["seconds"]
            result = {
                "streams_per_s": round(rate),
                "ttfe_p50_ms": stats["ttfe_p50_ms"],
                "ttfe_p99_ms": stats["ttfe_p99_ms"],
                "errors": stats["errors"],
                "gen_cpu_s": stats["gen_cpu_s"],
                "alone_p50_ms": alone["ttfe_p50_ms"],
                "alone_p99_ms": alone["ttfe_p99_ms"],
            }
            self.record(name, "first", result)
            log(
                f"{name} first event: {rate:.0f} streams/s, p50 "
                f"{stats['ttfe_p50_ms']:.2f} ms p99 {stats['ttfe_p99_ms']:.2f} ms"
            )

    # -- 5. reconnect storm --------------------------------------------------
    def ramp(self, name: str) -> None:
        total, rate = (500, 500) if self.quick else (10_000, 2_000)
        with running(name, self.log_dir) as (server, gen):
            stats = gen.command(f"ramp {total} {rate} /idle 60", 60)
            result = {
                "clients": total,
                "rate": rate,
                "first_events": stats["first_events"],
                "ttfe_p50_ms": stats["ttfe_p50_ms"],
                "ttfe_p99_ms": stats["ttfe_p99_ms"],
                "errors": stats["errors"],
            }
            self.record(name, "ramp", result)
            log(
                f"{name} ramp {total} at {rate}/s: {stats['first_events']} first,"
                f" p50 {stats['ttfe_p50_ms']:.2f} ms p99 {stats['ttfe_p99_ms']:.2f} ms"
            )


# -- report ----------------------------------------------------------------
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        if 0 < abs(value) < 1:
            digits = max(digits, 2)  # sub-millisecond latencies keep two
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(mine: Any, theirs: Any, lower_is_better: bool) -> str:
    try:
        if not mine or not theirs:
            return "-"
        r = theirs / mine if lower_is_better else mine / theirs
        return f"{r:.2f}×"
    except TypeError:
        return "-"


def table(
    results: dict[str, dict[str, Any]],
    title: str,
    columns: list[tuple[str, Callable[[dict[str, Any]], Any], bool]],
) -> str:
    """A Markdown table: one row per server, then gsse's advantage per column.

    The advantage is "how many times better gsse is" (>1: gsse wins), so a
    lower-is-better column is inverted.
    """
    names = list(results)
    head = "| server | " + " | ".join(c[0] for c in columns) + " |"
    lines = [f"### {title}", "", head, "|---" * (len(columns) + 1) + "|"]
    values: dict[str, list[Any]] = {}
    for name in names:
        row = []
        for _, get, _ in columns:
            try:
                row.append(get(results[name]))
            except (KeyError, TypeError, IndexError, ZeroDivisionError):
                row.append(None)
        values[name] = row
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in row) + " |")
    if "gsse" in values:
        for name in names:
            if name == "gsse":
                continue
            cells = [
                _ratio(values["gsse"][i], values[name][i], columns[i][2])
                for i in range(len(columns))
            ]
            lines.append(f"| gsse vs {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _step(result: dict[str, Any], key: str, index: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = result[key]["steps"]
    return steps[index]


def _fan_at(result: dict[str, Any], target: int, key: str = "fanout") -> dict[str, Any]:
    for step in result[key]["steps"]:
        if step["target_per_s"] == target:
            return dict(step)
    raise KeyError(target)


def report(results: dict[str, dict[str, Any]], quick: bool) -> str:
    low = 100 if quick else 1000
    fan10k = 1000 if quick else 10000
    out = [
        table(
            results,
            "Plain GET /ping flat out, keep-alive (wrk, 10 connections)",
            [
                ("req/s", lambda r: r["ping"]["rps"], False),
                ("p50 ms", lambda r: r["ping"]["p50_ms"], True),
                ("p99 ms", lambda r: r["ping"]["p99_ms"], True),
            ],
        )
    ]
    for label in ("callback", "subscriber"):
        key = f"hold_{label}"
        out.append(
            table(
                results,
                f"Idle {label} streams: memory, connect rate, /ping while held",
                [
                    ("KB/stream (slope)", lambda r, k=key: r[k]["kb_per_stream"], True),
                    ("most held", lambda r, k=key: _step(r, k, -1)["held"], False),
                    (
                        f"connect/s ({low})",
                        lambda r, k=key: _step(r, k, 0)["connect_per_s"],
                        False,
                    ),
                    (
                        f"/ping p99 ms at {PROBE_RATE}/s (most held)",
                        lambda r, k=key: _step(r, k, -1)["ping"]["p99_ms"],
                        True,
                    ),
                    (
                        "/ping req/s flat out (most held)",
                        lambda r, k=key: _step(r, k, -1)["ping"]["rps"],
                        False,
                    ),
                ],
            )
        )
    out.append(
        table(
            results,
            f"Broadcast fan-out to {'100' if quick else '1000'} subscribers",
            [
                ("best events/s, p99 < 1 s", lambda r: r["fanout"]["best"], False),
                (
                    f"p50 ms at {fan10k}/s",
                    lambda r: _fan_at(r, fan10k)["lat_p50_ms"],
                    True,
                ),
                (
                    f"p99 ms at {fan10k}/s",
                    lambda r: _fan_at(r, fan10k)["lat_p99_ms"],
                    True,
                ),
                (
                    f"server CPU µs/event at {fan10k}/s",
                    lambda r: _fan_at(r, fan10k)["cpu_us_per_event"],
                    True,
                ),
                (
                    f"generator CPU s at {fan10k}/s",
                    lambda r: _fan_at(r, fan10k)["gen_cpu_s"],
                    True,
                ),
            ],
        )
    )
    out.append(
        table(
            results,
            f"Broadcast to {'100' if quick else '1000'} subscribers, one publish"
            " per wake-up",
            [
                ("best events/s, p99 < 1 s", lambda r: r["fanout1"]["best"], False),
                (
                    f"p99 ms at {fan10k}/s",
                    lambda r: _fan_at(r, fan10k, "fanout1")["lat_p99_ms"],
                    True,
                ),
                (
                    f"server CPU µs/event at {fan10k}/s",
                    lambda r: _fan_at(r, fan10k, "fanout1")["cpu_us_per_event"],
                    True,
                ),
            ],
        )
    )
    for key, title in (("ticks", "Tick loops"), ("ticks_blocking", "blocking=True")):
        if not any(key in r for r in results.values()):
            continue
        out.append(
            table(
                {n: r for n, r in results.items() if key in r}
                if key != "ticks"
                else results,
                f"{low} {title} (send; sleep 0.1) with /ping at {PROBE_RATE}/s",
                [
                    ("ticks/s", lambda r, k=key: r[k]["ticks_per_s"], False),
                    ("tick p99 ms", lambda r, k=key: r[k]["lat_p99_ms"], True),
                    ("/ping p50 ms", lambda r, k=key: r[k]["ping"]["p50_ms"], True),
                    ("/ping p99 ms", lambda r, k=key: r[k]["ping"]["p99_ms"], True),
                    ("server CPU %", lambda r, k=key: r[k]["server_cpu_pct"], True),
                ],
            )
        )
    out.append(
        table(
            results,
            "Fresh connections: time to first event (50 clients, then one)",
            [
                ("streams/s", lambda r: r["first"]["streams_per_s"], False),
                ("p50 ms", lambda r: r["first"]["ttfe_p50_ms"], True),
                ("p99 ms", lambda r: r["first"]["ttfe_p99_ms"], True),
                ("one client p50 ms", lambda r: r["first"].get("alone_p50_ms"), True),
                ("one client p99 ms", lambda r: r["first"].get("alone_p99_ms"), True),
                ("generator CPU s", lambda r: r["first"]["gen_cpu_s"], True),
            ],
        )
    )
    storm = "500 clients at 500/s" if quick else "10,000 clients at 2,000/s"
    out.append(
        table(
            results,
            f"Reconnect storm: {storm}, connect to first event",
            [
                ("first events", lambda r: r["ramp"]["first_events"], False),
                ("p50 ms", lambda r: r["ramp"]["ttfe_p50_ms"], True),
                ("p99 ms", lambda r: r["ramp"]["ttfe_p99_ms"], True),
                ("errors", lambda r: r["ramp"]["errors"], True),
            ],
        )
    )
    return "\n".join(out)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module in ("gsse", "gevent", "uvicorn", "uvloop", "sse_starlette", "flask"):
        try:
            found[module] = metadata.version(module.replace("_", "-"))
        except metadata.PackageNotFoundError:
            found[module] = "?"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True)
    found["node"] = node.stdout.strip()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json", default=str(HERE / "out" / "results.json"))
    parser.add_argument("--log-dir", default=str(HERE / "out"))
    parser.add_argument(
        "--gsse-at",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run the gsse found in PATH (a checkout) as server gsse@LABEL,"
        " interleaved with the others (e.g. main=/tmp/main to compare a branch)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="shorthand for --gsse-at before=DIR (server gsse@before)",
    )
    args = parser.parse_args(argv)
    if args.baseline:
        args.gsse_at.append(f"before={args.baseline}")
    for spec in args.gsse_at:
        label, sep, path = spec.partition("=")
        if not sep or not label or not Path(path, "gsse").is_dir():
            parser.error(f"--gsse-at wants LABEL=PATH, PATH holding gsse/: {spec!r}")
        name = f"gsse@{label}"
        SERVERS[name] = SERVERS["gsse"]
        GSSE_AT[name] = str(Path(path).resolve())
        if name not in args.servers.split(","):
            args.servers += f",{name}"
    servers = [s for s in args.servers.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in servers:
        if s not in SERVERS:
            parser.error(f"unknown server {s!r}; choose from {', '.join(SERVERS)}")
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    if not GENERATOR.exists():
        parser.error(f"{GENERATOR} is missing: build it with `make -C {HERE}`")
    bench = Bench(args)
    log(f"fd limit {bench.nofile}; servers on CPU {SERVER_CPU}, load on {LOAD_CPU}")
    started = time.monotonic()
    for scenario in scenarios:
        for name in servers:
            log(f"--- {scenario}: {name}")
            try:
                getattr(bench, scenario)(name)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                log(f"{name} {scenario} failed: {exc}")
                bench.record(name, f"{scenario}_error", str(exc))
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/run.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}",
        "fd_limit": bench.nofile,
        "versions": versions(),
        "seconds": round(time.monotonic() - started),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps({"meta": meta, "results": bench.results}, indent=1)
    )
    print(f"Run: `{meta['command']}` on {meta['date']} ({meta['seconds']} s)\n")
    print(f"Machine: {meta['machine']}; fd limit {meta['fd_limit']}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    print()
    print(report(bench.results, args.quick))
    log(f"done in {meta['seconds']} s; figures in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
