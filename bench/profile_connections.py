"""Profile gsse's connection path in-process with cProfile.

Usage::

    make -C bench ssegen
    python bench/profile_connections.py ping      # wrk, keep-alive GET /ping
    python bench/profile_connections.py ramp      # ssegen opens 10k /idle streams
    python bench/profile_connections.py churn     # fresh /tick streams, closed at once

The server (``bench/servers/gsse_app.py`` on :class:`gsse.Server`) runs in
this process under cProfile, pinned to CPU 0; the load runs on CPU 1. The
top functions by own time and by cumulative time go to stdout. Every wait
is bounded and every process started here is stopped by its PID.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import cProfile  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "servers"))
sys.path.insert(0, str(HERE))

from run import Generator  # noqa: E402
from run import wrk_ping  # noqa: E402

from gsse import Server  # noqa: E402


def drive(kind: str, port: int) -> str:
    if kind == "ping":
        return str(wrk_ping(port, 8))
    gen = Generator(port)
    try:
        if kind == "ramp":
            return str(gen.open(10_000, "/idle", 60))
        return str(gen.command("churn /tick 8 50 1000000", 8))
    finally:
        gen.stop()


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "ping"
    os.sched_setaffinity(0, {0})
    from gsse_app import app

    server = Server(app, "127.0.0.1", 0, graceful_timeout=1, backlog=4096)
    server.start()
    result: list[str] = []
    # The load is driven from a greenlet (threads are patched): its waits yield.
    thread = threading.Thread(target=lambda: result.append(drive(kind, server.port)))
    thread.daemon = True
    profile = cProfile.Profile()
    profile.enable()
    thread.start()
    while thread.is_alive():
        gevent.sleep(0.1)
    profile.disable()
    server.stop(1)
    print(f"## {kind}: {result[0] if result else 'no result'}\n")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(30)
        print(f"### by {order}\n```\n{out.getvalue()}```\n")


if __name__ == "__main__":
    main()
