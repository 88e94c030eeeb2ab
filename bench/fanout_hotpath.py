"""CPU cost of the broker's fan-out loop alone: no sockets, no event loop.

Usage::

    python bench/fanout_hotpath.py                     # 1000 subscribers
    python bench/fanout_hotpath.py --subscribers 100 --events 2000 --runs 7

Calls ``gsse.brokers.fanout.fan_out`` for ``--events`` unkeyed events over
``--subscribers`` live one-channel subscriptions, each a ``Stream`` over a
``QueueTransport`` (buffers are emptied between events, never fill), and
prints the best of ``--runs`` as nanoseconds per delivered event. The
network benchmarks (``bench/run.py fanout``) are too noisy on a shared
machine to see a change of a few percent in this loop; this isolates it.
To compare another gsse, put its source first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import time

from gsse.brokers.fanout import Subscription
from gsse.brokers.fanout import fan_out
from gsse.brokers.frames import Frame
from gsse.settings import ResolvedSettings
from gsse.streams import Stream
from gsse.transport import QueueTransport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = ResolvedSettings(ping=0.0, send_timeout=30.0, buffer_size=65536)
    streams = [Stream(QueueTransport(), settings) for _ in range(args.subscribers)]
    subscriptions = set()
    for stream in streams:
        subscription = Subscription(stream, ("bench",))
        subscription.pending = None  # live
        subscriptions.add(subscription)
    raw = b'data: {"price": 101.25, "symbol": "AAPL"}\n'
    best = float("inf")
    n = 0
    for _ in range(args.runs):
        frames = []
        for _ in range(args.events):
            n += 1
            frames.append(Frame("bench", (1_700_000_000_000, n), raw))
        elapsed = 0.0
        for frame in frames:
            started = time.perf_counter()
            fan_out(subscriptions, frame)
            elapsed += time.perf_counter() - started
            for stream in streams:
                stream.buffer.clear()
        best = min(best, elapsed)
    per_event_ns = best / (args.events * args.subscribers) * 1e9
    print(
        json.dumps(
            {"subscribers": args.subscribers, "ns_per_delivery": round(per_event_ns, 1)}
        )
    )


if __name__ == "__main__":
    main()
