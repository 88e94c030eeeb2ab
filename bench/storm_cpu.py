"""Server CPU seconds for a reconnect storm: 10,000 ``/idle`` streams at 2,000/s.

Usage::

    python bench/storm_cpu.py gsse gsse-before gsse gsse-before \\
        --baseline /tmp/gsse-before

Each named server (``bench/run.py``'s, plus ``gsse-before`` from
``--baseline``) is started alone on CPU 0; ``ssegen ramp`` opens the streams
from CPU 1; the server's CPU time over the ramp, the wall time and the
connect-to-first-event p50 are printed. CPU time is what a loaded machine
distorts least. Every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("servers", nargs="+")
    parser.add_argument("--baseline", metavar="DIR")
    args = parser.parse_args()
    if args.baseline:
        run.SERVERS["gsse-before"] = run.SERVERS["gsse"]
        run.GSSE_AT["gsse-before"] = args.baseline
    log_dir = Path(tempfile.mkdtemp(prefix="storm-"))
    for name in args.servers:
        with run.running(name, log_dir) as (server, gen):
            cpu, started = server.cpu_s(), time.monotonic()
            stats = gen.command("ramp 10000 2000 /idle 60", 60)
            print(
                f"{name}: server CPU {server.cpu_s() - cpu:.2f} s, wall"
                f" {time.monotonic() - started:.1f} s, first event p50"
                f" {stats['ttfe_p50_ms']:.0f} ms, p99 {stats['ttfe_p99_ms']:.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
