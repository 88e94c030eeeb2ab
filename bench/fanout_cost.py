"""The fan-out hot path alone: µs per delivered event, in one process.

Usage::

    python bench/fanout_cost.py [EVENTS] [REPS]
    PYTHONPATH=/tmp/main python bench/fanout_cost.py   # another gsse checkout

1000 one-channel subscribers on real loopback sockets; each event goes
through ``gsse.brokers.fanout.fan_out`` (the broker's delivery), timed
alone, then the loop turns once so the corked sends go out (not timed) and
the clients are drained now and then. Prints the best of ``REPS`` rounds:
on a loaded machine the minimum is the figure least disturbed by others,
so alternate two checkouts several times and compare minimums. The full
benchmark (``bench/run.py --scenarios fanout``) measures the same path with
its sends, from a real client.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import inspect  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from gsse.brokers.fanout import Subscription  # noqa: E402
from gsse.brokers.fanout import fan_out  # noqa: E402
from gsse.brokers.frames import Frame  # noqa: E402
from gsse.settings import StreamSettings  # noqa: E402
from gsse.transport import SocketTransport  # noqa: E402

SUBSCRIBERS = 1000


def open_stream(sock: socket.socket) -> Any:
    """A stream over ``sock``, as this checkout of gsse makes one."""
    settings = StreamSettings(ping=0).resolved()
    if "settings" in inspect.signature(SocketTransport).parameters:
        return SocketTransport(sock, True, settings)  # before gsse.streams
    from gsse.streams import Stream

    return Stream(SocketTransport(sock, True), settings)


def main(events: int, reps: int) -> float:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(SUBSCRIBERS)
    clients, subscriptions = [], []
    for _ in range(SUBSCRIBERS):
        client = socket.create_connection(listener.getsockname())
        server_end, _ = listener.accept()
        client.setblocking(False)
        clients.append(client)
        subscription = Subscription(open_stream(server_end), ("bench",))
        subscription.pending = None  # live: no replay to wait for
        subscriptions.append(subscription)

    def drain() -> None:
        for client in clients:
            try:
                while client.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    best = float("inf")
    for rep in range(reps):
        spent = 0.0
        for n in range(events):
            frame = Frame("bench", (rep + 1, n + 1), b"data: %d\n" % time.time_ns())
            started = time.perf_counter()
            fan_out(subscriptions, frame)
            spent += time.perf_counter() - started
            gevent.sleep(0)  # the cork's flush: one send per stream
            if not n % 20:
                drain()
        drain()
        best = min(best, spent / (events * SUBSCRIBERS) * 1e6)
    return best


if __name__ == "__main__":
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    best = main(events, reps)
    print(f"fan_out: best of {reps}: {best:.3f} µs per delivered event (no sends)")
