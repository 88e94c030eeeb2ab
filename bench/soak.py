"""Soak run: minutes of churn against one gsse server, then a resource report.

Usage::

    python bench/soak.py --minutes 10          # prints a Markdown report
    python bench/soak.py --minutes 1 --append bench/RESULTS.md

The server runs in a child process (so the load generator's own sockets and
greenlets do not blur its numbers) and answers ``/stats`` with its open file
descriptors, live greenlets (a gc scan), RSS and ``gsse.metrics.STATS``.
The driver, in this process, keeps up for ``--minutes``:

- resuming subscribers: each reads the ``news`` channel for 1-8 s, hangs up,
  and comes back with ``Last-Event-ID``; every event carries a sequence
  number, so a gap (lost) or a repeat (twice) is seen at once;
- connect/drop churn on a callback stream, some with resets;
- slow readers that stop reading a fast stream (dropped by ``send_timeout``);
- garbage requests;
- a publisher inside the server, 20 events a second.

The server's numbers are sampled idle before the load, during it, and idle
after it; "flat" means the idle numbers after equal those before.

The channel is a ``gsse.Broker`` (``memory://``, history 1000).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from gsse import App  # noqa: E402
from gsse import Broker  # noqa: E402
from gsse import Event  # noqa: E402
from gsse import Server  # noqa: E402
from gsse import SSEWriter  # noqa: E402
from gsse.metrics import STATS  # noqa: E402
from gsse.wire import EventStreamDecoder  # noqa: E402

PUBLISH_EVERY = 0.05
PAD = "x" * 200


# -- the server (child process) ----------------------------------------------


def live_greenlets() -> int:
    gc.collect()
    return sum(
        1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead
    )


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def serve(port_file: str, send_timeout: float) -> None:
    import logging

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    broker = Broker.from_url("memory://", history=1000)
    source = "gsse.Broker memory://"
    app = App()

    @app.route("/news")
    def news(event: Event) -> None:
        event.start_sse()
        event.subscribe(broker, "news")

    @app.route("/ticks")
    def ticks(event: Event) -> None:
        event.start_sse()

        def tick(writer: SSEWriter) -> None:
            for i in range(50):
                writer.send_event(str(i))
                time.sleep(0.1)

        event.set_stream_callback(tick)

    @app.route("/flood")
    def flood(event: Event) -> None:
        event.start_sse()

        def blast(writer: SSEWriter) -> None:
            big = "y" * 16384
            while True:
                writer.send_event(big)

        event.set_stream_callback(blast)

    @app.route("/stats")
    def stats(event: Event) -> dict[str, Any]:
        return {
            "fds": len(os.listdir("/proc/self/fd")),
            "greenlets": live_greenlets(),
            "rss_kib": rss_kib(),
            "source": source,
            **STATS.snapshot(),
        }

    def publisher() -> None:
        seq = 0
        while True:
            seq += 1
            broker.publish("news", {"seq": seq, "pad": PAD})
            gevent.sleep(PUBLISH_EVERY)

    server = Server(
        app, "127.0.0.1", 0, send_timeout=send_timeout, ping=5, header_timeout=5
    )
    server.start()
    gevent.spawn(publisher)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.port))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


# -- the driver ----------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.received = 0
        self.gaps = 0
        self.lost = 0
        self.duplicates = 0
        self.resets = 0
        self.resumes = 0
        self.churn = 0
        self.slow = 0
        self.garbage = 0
        self.errors = 0


def read_stream(
    port: int, path: str, last_id: str | None, seconds: float, on_message: Any
) -> None:
    """HTTP/1.0 GET (a close-delimited body), decoded for ``seconds``."""
    headers = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: soak\r\n{headers}\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed before headers")
            raw += data
        head, body = raw.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head[:60].decode("latin-1"))
        decoder = EventStreamDecoder(last_id or "")
        pending = decoder.feed(body)
        while True:
            for message in pending:
                on_message(message)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                return
            pending = decoder.feed(data)


def resumer(port: int, tally: Tally, stop_at: float, rng: random.Random) -> None:
    last_id: str | None = None
    expected: int | None = None

    def on_message(message: Any) -> None:
        nonlocal last_id, expected
        if message.event == "reset":
            tally.resets += 1
            expected = None
            last_id = message.id
            return
        seq = json.loads(message.data)["seq"]
        tally.received += 1
        if expected is not None:
            if seq > expected:
                tally.gaps += 1
                tally.lost += seq - expected
            elif seq < expected:
                tally.duplicates += 1
        expected = seq + 1
        last_id = message.id

    while time.monotonic() < stop_at:
        try:
            read_stream(port, "/news", last_id, rng.uniform(1, 8), on_message)
            if last_id is not None:
                tally.resumes += 1
        except (OSError, ConnectionError):
            tally.errors += 1
        gevent.sleep(rng.uniform(0, 0.5))


def churner(port: int, tally: Tally, stop_at: float, rng: random.Random) -> None:
    while time.monotonic() < stop_at:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if rng.random() < 0.8:
                sock.sendall(b"GET /ticks HTTP/1.1\r\nHost: soak\r\n\r\n")
                sock.settimeout(5)
                sock.recv(4096)
            if rng.random() < 0.3:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0"
                )
            sock.close()
            tally.churn += 1
        except OSError:
            tally.errors += 1
        gevent.sleep(rng.uniform(0, 0.1))


def slow_reader(port: int, tally: Tally, stop_at: float, rng: random.Random) -> None:
    while time.monotonic() < stop_at:
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /flood HTTP/1.1\r\nHost: soak\r\n\r\n")
            gevent.sleep(rng.uniform(2, 8))  # never reads
            sock.close()
            tally.slow += 1
        except OSError:
            tally.errors += 1


def garbage(port: int, tally: Tally, stop_at: float, rng: random.Random) -> None:
    while time.monotonic() < stop_at:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(os.urandom(rng.randint(1, 500)) + b"\r\n\r\n")
                sock.settimeout(5)
                sock.recv(1024)
            tally.garbage += 1
        except OSError:
            tally.garbage += 1
        gevent.sleep(rng.uniform(0.1, 0.5))


def get_stats(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /stats HTTP/1.0\r\nHost: soak\r\n\r\n")
        raw = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    return dict(json.loads(raw.split(b"\r\n\r\n", 1)[1]))


def wait_idle(port: int, timeout: float = 30.0) -> dict[str, Any]:
    """Sample until no stream is open (or timeout), then return the sample."""
    deadline = time.monotonic() + timeout
    while True:
        stats = get_stats(port)
        if stats["open_streams"] == 0 or time.monotonic() > deadline:
            return stats
        gevent.sleep(0.5)


def drive(args: argparse.Namespace) -> str:
    port_file = f"/tmp/gsse-soak-{os.getpid()}.port"
    args.server_log = f"/tmp/gsse-soak-{os.getpid()}.log"
    log = open(args.server_log, "w")
    child = subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--serve",
            port_file,
            "--send-timeout",
            str(args.send_timeout),
        ],
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the soak server did not start")
            time.sleep(0.1)
        with open(port_file) as f:
            port = int(f.read())
        return run_load(port, args)
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)
        log.close()
        if os.path.exists(port_file):
            os.unlink(port_file)


def run_load(port: int, args: argparse.Namespace) -> str:
    rng = random.Random(args.seed)
    tally = Tally()
    # Warm up: one short round of everything, so lazy allocations are done.
    warm_until = time.monotonic() + 5
    warm = [gevent.spawn(resumer, port, Tally(), warm_until, random.Random(1))]
    warm += [gevent.spawn(churner, port, Tally(), warm_until, random.Random(2))]
    gevent.joinall(warm, timeout=30)
    before = wait_idle(port)
    started = time.monotonic()
    stop_at = started + args.minutes * 60
    workers = [
        gevent.spawn(resumer, port, tally, stop_at, random.Random(rng.random()))
        for _ in range(args.subscribers)
    ]
    workers += [
        gevent.spawn(churner, port, tally, stop_at, random.Random(rng.random()))
        for _ in range(args.churners)
    ]
    workers += [
        gevent.spawn(slow_reader, port, tally, stop_at, random.Random(rng.random()))
        for _ in range(args.slow)
    ]
    workers.append(gevent.spawn(garbage, port, tally, stop_at, random.Random(3)))
    samples = []
    interval = max(args.minutes * 60 / 10, 5)
    while time.monotonic() < stop_at:
        gevent.sleep(min(interval, max(stop_at - time.monotonic(), 0)))
        stats = get_stats(port)
        stats["t"] = round(time.monotonic() - started)
        samples.append(stats)
        print(
            f"t={stats['t']:>4}s open={stats['open_streams']:>4} fds={stats['fds']:>4}"
            f" greenlets={stats['greenlets']:>4} rss={stats['rss_kib']} KiB"
            f" received={tally.received} lost={tally.lost} dup={tally.duplicates}",
            file=sys.stderr,
            flush=True,
        )
    gevent.joinall(workers, timeout=30)
    after = wait_idle(port)
    return report(args, before, samples, after, tally)


def report(
    args: argparse.Namespace,
    before: dict[str, Any],
    samples: list[dict[str, Any]],
    after: dict[str, Any],
    tally: Tally,
) -> str:
    lines = [
        "## Soak",
        "",
        f"`python bench/soak.py --minutes {args.minutes:g}` on"
        f" {time.strftime('%Y-%m-%d')}: {args.subscribers} resuming subscribers,"
        f" {args.churners} connect/drop loops, {args.slow} slow readers, garbage"
        f" requests, 20 publishes/s; send_timeout {args.send_timeout:g} s."
        f" Channel: {after['source']}.",
        "",
        "Server process, idle before the load and idle after it:",
        "",
        "| | before | after |",
        "|---|---:|---:|",
        f"| open fds | {before['fds']} | {after['fds']} |",
        f"| live greenlets | {before['greenlets']} | {after['greenlets']} |",
        f"| RSS (KiB) | {before['rss_kib']} | {after['rss_kib']} |",
        f"| open streams | {before['open_streams']} | {after['open_streams']} |",
        "",
        "During the load:",
        "",
        "| t (s) | open streams | fds | greenlets | RSS (KiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        lines.append(
            f"| {s['t']} | {s['open_streams']} | {s['fds']} | {s['greenlets']}"
            f" | {s['rss_kib']} |"
        )
    with open(args.server_log, errors="replace") as f:
        log_text = f.read()
    log_lines = log_text.count("\n")
    tracebacks = log_text.count("Traceback")
    first, last = (samples[0], samples[-1]) if samples else (after, after)
    lines += [
        "",
        f"First and last sample under load: fds {first['fds']} / {last['fds']},"
        f" greenlets {first['greenlets']} / {last['greenlets']},"
        f" RSS {first['rss_kib']} / {last['rss_kib']} KiB.",
    ]
    opened = after["streams_opened"] - before["streams_opened"]
    timeouts = after["send_timeouts"] - before["send_timeouts"]
    lines += [
        "",
        f"- streams opened: {opened}; send timeouts: {timeouts};"
        f" refused/garbage requests: {tally.garbage};"
        f" disconnects by cause: {after['disconnects']}",
        f"- subscribers received {tally.received} events over {tally.resumes}"
        f" resumes with Last-Event-ID: lost {tally.lost} (in {tally.gaps} gaps),"
        f" duplicated {tally.duplicates}, resets {tally.resets}",
        f"- connect/drop cycles: {tally.churn}; slow readers: {tally.slow};"
        f" client-side errors: {tally.errors}",
        f"- server log: {log_lines} lines (WARNING and up; pywsgi logs each garbage"
        f" request), {tracebacks} tracebacks; the server process never restarted",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--churners", type=int, default=10)
    parser.add_argument("--slow", type=int, default=5)
    parser.add_argument("--send-timeout", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--append", metavar="FILE", help="append the report to FILE")
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.send_timeout)
        return
    if not 0 < args.minutes <= 60:
        parser.error("--minutes must be > 0 and at most 60")
    text = drive(args)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
