"""What a run's metadata is, and what every backend's store offers.

A run's events live in a broker channel; its metadata (status, times,
event count, the ids that bound its log) lives beside it in the broker's
backend, so that any process sharing the broker can answer ``404``,
``204`` or ``runs.get()`` for it. :mod:`.store_memory` keeps it in a dict
(one process); :mod:`.store_redis` in a Redis hash with a TTL.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from typing import Protocol

#: The statuses a run may have; every one but ``running`` is final.
RUNNING = "running"
DONE = "done"
ERROR = "error"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
STATUSES = (RUNNING, DONE, ERROR, CANCELLED, INTERRUPTED)

#: What a run id looks like (``secrets.token_urlsafe``): anything else from a
#: URL is an unknown run (``404``), checked before any backend is asked.
RUN_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def channel_of(run_id: str) -> str:
    """The broker channel that holds the run's events."""
    return f"run:{run_id}"


class RunInfo(NamedTuple):
    """What :meth:`gsse.Runs.get` returns about a run.

    .. versionadded:: 0.3
    """

    status: str
    """``running``, ``done``, ``error``, ``cancelled`` or ``interrupted``."""
    started: float
    """When it started (seconds since the epoch)."""
    ended: float | None
    """When it ended, or ``None`` while running."""
    events: int
    """Events the producer sent (while running and seen from another
    process: as of the owner's last heartbeat, at most half a second old)."""
    origin: str
    """The id before the run's first event: followers without a
    ``Last-Event-ID`` resume from it."""
    end_id: str | None
    """The id of the final ``end`` event, once sent."""

    @property
    def finished(self) -> bool:
        """Whether the run has its final status."""
        return self.status != RUNNING


class RunStore(Protocol):
    """The metadata of runs, in the broker's backend."""

    def create(self, run_id: str, origin: str, started: float) -> None:
        """Record a new running run (and, on Redis, its owner's lease)."""

    def get(self, run_id: str) -> RunInfo | None:
        """The run's metadata, or ``None`` if unknown or expired."""

    def finish(
        self, run_id: str, status: str, ended: float, count: int, *, orphan: bool
    ) -> bool:
        """Set a final status if the run is still running; ``True`` if this did.

        Atomic, so exactly one caller publishes the ``end`` event.
        ``orphan``: only if the owner's lease is gone (it died).
        """

    def ended(self, run_id: str, end_id: str, ttl: float) -> None:
        """Record the ``end`` event's id; drop the run ``ttl`` s from now."""

    def cancel(self, run_id: str) -> bool:
        """Ask the owner to cancel; ``False`` if not running (or unknown)."""

    def heartbeat(self, counts: dict[str, int]) -> set[str]:
        """Renew the leases of these running runs; return those cancelled."""

    def orphans(self, run_ids: list[str]) -> list[str]:
        """Of these runs, those still ``running`` whose owner's lease is gone."""
