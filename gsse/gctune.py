"""Python's cyclic garbage collector in a process that holds many streams.

A full collection walks every tracked object and stops the event loop
while it does: about 13 ms per 1,000 open streams on a 2-core machine
(130 ms at 10,000, measured in ``bench/RESULTS.md``). CPython runs one each
time the heap has grown by a quarter since the last, so a reconnect storm,
when the heap grows fastest, met a pause every second or two, and every
client connecting meanwhile waited for it (the storm's p99 went from 8 ms to
over 100 ms).

``gsse run`` and gsse's gunicorn worker therefore, once the app is loaded:

- freeze what exists then (modules, the app, its routes: objects that live
  as long as the process), so that no collection walks them again;
- keep young collections as they are (they are short: new objects only),
  and run a full collection after 1,000 collections of the middle
  generation instead of 10 (with CPython's own rule of a quarter's growth
  still required). Streams free their objects by reference counting, not
  by the collector, so this keeps garbage no longer in practice.

``GSSE_GC=python`` (or ``gsse run --gc python``) leaves Python's defaults;
an app may still call :func:`gc.collect` when it suits it.
"""

from __future__ import annotations

import gc
import logging
import os

__all__ = ["GC_MODES", "tune_gc"]

logger = logging.getLogger(__name__)

#: ``--gc`` values: gsse's tuning, or Python's defaults untouched.
GC_MODES = ("tuned", "python")
#: Collections of the middle generation between two full ones (CPython: 10).
FULL_EVERY = 1000


def tune_gc(mode: str | None = None) -> bool:
    """Apply ``mode`` (default: ``GSSE_GC``, else ``tuned``); whether it tuned.

    :raises ValueError: an unknown mode.
    """
    if mode is None:
        mode = os.environ.get("GSSE_GC") or "tuned"
    if mode not in GC_MODES:
        raise ValueError(f"GSSE_GC must be one of {', '.join(GC_MODES)}; got {mode!r}")
    if mode == "python":
        return False
    young, middle, _ = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(young, middle, FULL_EVERY)
    logger.debug(
        "garbage collector tuned for streams: %d startup objects frozen, a full"
        " collection every %d middle ones",
        gc.get_freeze_count(),
        FULL_EVERY,
    )
    return True
