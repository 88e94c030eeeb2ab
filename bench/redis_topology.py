"""Sizing figures for ``redis://``, ``redis+sentinel://`` and ``redis+cluster://``.

Usage::

    python bench/redis_topology.py                    # all three, 3 rounds
    python bench/redis_topology.py --rounds 1 --seconds 3 --json /tmp/t.json

It starts, on free ports, one ``redis-server``, a Sentinel setup (primary,
replica, three Sentinels) and a three-primary Redis Cluster (the fixtures
of tests/redis_topology.py), and one ``gsse run`` server per backend
(bench/redis_channels.py's app). The backends are measured in turn within
each round (interleaved: the machine is shared, so compare within a run).
Per backend and round:

- **publish**: 16 greenlets in this process publish small events to 1000
  random channels for ``--seconds``; events/s, and the CPU time every Redis
  server of the backend spent per event (one Redis core's capacity is
  about 1 / that; a cluster spreads it over its primaries).
- **memory**: the Redis memory each channel costs with ``history=100``
  events of ~100 bytes (``used_memory`` over 200 such channels).
- **deliver**: 1000 streams on 100 channels (10 per channel) of one gsse
  process; events published at ``--rate`` per second for ``--seconds``;
  deliveries/s, p50/p99 latency from publish to the stream's socket, and
  the gsse process's CPU time per delivered event.

Every wait is bounded; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from redis_channels import Stream  # noqa: E402
from redis_channels import free_port  # noqa: E402
from redis_channels import pct  # noqa: E402
from redis_channels import start_server  # noqa: E402
from redis_channels import stop  # noqa: E402

import gsse  # noqa: E402

STREAMS, CHANNELS = 1000, 100
PUBLISHERS = 16


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def servers_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def used_memory(ports: list[int]) -> int:
    """Redis memory in use, without the publish tokens (they expire in ~16 s)."""
    import redis

    total = 0
    for port in ports:
        with redis.Redis(port=port) as client:
            if client.info("replication")["role"] != "master":
                continue
            for key in list(client.scan_iter(match="gsse:published:*", count=1000)):
                client.unlink(key)
            total += int(client.info("memory")["used_memory"])
    return total


def flush(ports: list[int]) -> None:
    import redis

    for port in ports:
        with redis.Redis(port=port) as client:
            if client.info("replication")["role"] == "master":
                client.flushall()


def measure_publish(url: str, pids: list[int], seconds: float) -> dict[str, float]:
    import gevent

    broker = gsse.Broker.from_url(url, history=100)
    count = 0
    rng = random.Random(3)
    stop_at = time.monotonic() + seconds

    def publish() -> None:
        nonlocal count
        while time.monotonic() < stop_at:
            broker.publish(f"p{rng.randrange(1000)}", {"x": "y" * 80})
            count += 1

    try:
        broker.publish("warm", "up")
        cpu0, t0 = servers_cpu(pids), time.monotonic()
        gevent.joinall([gevent.spawn(publish) for _ in range(PUBLISHERS)], timeout=60)
        elapsed, cpu = time.monotonic() - t0, servers_cpu(pids) - cpu0
    finally:
        broker.close()
    return {"publish_per_s": count / elapsed, "redis_us_per_event": cpu * 1e6 / count}


def measure_memory(url: str, ports: list[int]) -> float:
    import gevent

    broker = gsse.Broker.from_url(url, history=100)
    before = used_memory(ports)
    names = [f"m{i}" for i in range(200)]

    def fill(part: list[str]) -> None:
        for name in part:
            for _ in range(100):
                broker.publish(name, {"x": "y" * 80})

    try:
        gevent.joinall([gevent.spawn(fill, names[i::8]) for i in range(8)], timeout=600)
    finally:
        broker.close()
    return (used_memory(ports) - before) / len(names)


def measure_delivery(
    url: str, port: int, seconds: float, rate: float
) -> dict[str, Any]:
    import gevent

    server = start_server(port, url)
    streams: list[Stream] = []
    readers: list[Any] = []
    publisher = gsse.Broker.from_url(url, history=100)
    try:
        streams = [Stream(port, [f"d{i % CHANNELS}"]) for i in range(STREAMS)]
        readers = [gevent.spawn(s.read_forever) for s in streams]
        deadline = time.monotonic() + 120
        while not all(s.probed for s in streams) and time.monotonic() < deadline:
            for channel in {s.channels[0] for s in streams if not s.probed}:
                publisher.publish(channel, {"probe": 1})
            gevent.sleep(0.5)
        if not all(s.probed for s in streams):
            raise RuntimeError("streams not live after 120 s")
        rng = random.Random(7)
        stamps: dict[int, tuple[str, float]] = {}
        events = int(seconds * rate)
        cpu0 = cpu_seconds(server.pid)
        begin = time.perf_counter()
        for i in range(events):
            gevent.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            channel = f"d{rng.randrange(CHANNELS)}"
            stamps[i] = (channel, time.time())
            publisher.publish(channel, {"i": i, "t": stamps[i][1]})
        wanted = sum(
            1 for s in streams for i, (c, _) in stamps.items() if c in s.channels
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(len(s.arrived) for s in streams) >= wanted:
                break
            gevent.sleep(0.1)
        elapsed = time.perf_counter() - begin
        cpu = cpu_seconds(server.pid) - cpu0
        latencies = [
            (when - stamps[i][1]) * 1000
            for s in streams
            for i, when in s.arrived.items()
        ]
    finally:
        publisher.close()
        for stream in streams:
            stream.sock.close()
        gevent.joinall(readers, timeout=10)
        stop(server)
    return {
        "delivered": len(latencies),
        "wanted": wanted,
        "deliveries_per_s": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "gsse_us_per_delivery": cpu * 1e6 / max(1, len(latencies)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s (deliver)")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = parser.parse_args()
    from gevent import monkey

    monkey.patch_all()
    from tests.redis_server import RedisServer
    from tests.redis_topology import ClusterServers
    from tests.redis_topology import SentinelServers

    rows: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        single = RedisServer(home)
        sentinel = cluster = None
        try:
            sentinel = SentinelServers(home / "sentinel")
            cluster = ClusterServers(home / "cluster")
            backends = {
                "redis://": (single.url, [single]),
                "redis+sentinel://": (sentinel.url, sentinel.servers[:1]),
                "redis+cluster:// (3 primaries)": (cluster.url, cluster.nodes),
            }
            for round_ in range(args.rounds):
                for name, (url, nodes) in backends.items():
                    ports = [n.port for n in nodes]
                    pids = [n.proc.pid for n in nodes if n.proc is not None]
                    flush(ports)
                    row: dict[str, Any] = measure_publish(url, pids, args.seconds)
                    flush(ports)
                    row["bytes_per_channel"] = measure_memory(url, ports)
                    flush(ports)
                    row.update(
                        measure_delivery(url, free_port(), args.seconds, args.rate)
                    )
                    rows.setdefault(name, []).append(row)
                    print(round_, name, json.dumps(row), file=sys.stderr)
        finally:
            for servers in (cluster, sentinel, single):
                if servers is not None:
                    servers.stop()
    print(f"gsse {gsse.__version__}; median of {args.rounds} interleaved rounds")
    print()
    print("| backend | publish events/s (1 process) | Redis CPU µs/event |"
          " bytes/channel (history=100) | deliveries/s | p50 ms | p99 ms |"
          " gsse CPU µs/delivery |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in rows.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {name} | {m['publish_per_s']:,.0f} | {m['redis_us_per_event']:.0f}"
            f" | {m['bytes_per_channel']:,.0f} | {m['deliveries_per_s']:,.0f}"
            f" ({m['delivered']:.0f}/{m['wanted']:.0f}) | {m['p50_ms']:.1f}"
            f" | {m['p99_ms']:.1f} | {m['gsse_us_per_delivery']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
