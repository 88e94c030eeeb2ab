"""The numbers gsse counts: one :class:`Stats` per host, summed per process.

Each host (:class:`gsse.host.Host`: a server, a middleware serving on a
foreign host, a gunicorn worker's hook) counts its own streams, writes and
refusals in a :class:`Stats` of its own, so two servers in one process count
apart. The hot path bumps plain ``int`` slots of that one object, as cheap
as one process-wide object would be.

:data:`STATS` is the whole process: it sums every host's numbers when read
(and keeps those of hosts that are gone), and holds the numbers that belong
to no one host (brokers, auth, the watchdog).
"""

from __future__ import annotations

import time
import weakref
from typing import Any
from typing import TypeVar

from .exceptions import CloseReason

K = TypeVar("K")

__all__ = ["HOST_FIELDS", "PROCESS_FIELDS", "STATS", "ProcessStats", "Stats"]

#: What a host counts (and :data:`STATS` sums over the hosts).
HOST_FIELDS = (
    "streams_opened",
    "streams_closed",
    "writes",
    "bytes",
    "pings",
    "disconnects",
    "closes",
    "callback_errors",
    "rejected",
)
#: What only the process counts: brokers, auth and the watchdog serve all hosts.
PROCESS_FIELDS = (
    "loop_blocks",
    "loop_blocked_seconds",
    "broker_errors",
    "broker_lag",
    "auth_denied",
)


class Stats:
    """One host's counters, bumped on the hot path, read at scrape time.

    .. versionadded:: 0.1
    """

    # Slots: the hot path bumps these for every write.
    __slots__ = ("started", *HOST_FIELDS)

    def __init__(self) -> None:
        self.started = time.time()
        #: Streams opened since start; open streams are opened - closed.
        self.streams_opened = 0
        self.streams_closed = 0
        #: Writes handed to stream transports (events, comments, pings).
        self.writes = 0
        self.bytes = 0
        self.pings = 0
        #: Streams ended, by :attr:`CloseReason.cause` and by reason.
        self.disconnects: dict[str, int] = {}
        self.closes: dict[CloseReason, int] = {}
        self.callback_errors = 0
        #: Requests refused by a limit, by status code.
        self.rejected: dict[int, int] = {}

    @property
    def open_streams(self) -> int:
        return self.streams_opened - self.streams_closed

    def stream_closed(self, reason: CloseReason) -> None:
        self.streams_closed += 1
        self.closes[reason] = self.closes.get(reason, 0) + 1
        cause = reason.cause
        self.disconnects[cause] = self.disconnects.get(cause, 0) + 1

    def wrote(self, writes: int, size: int) -> None:
        """``writes`` writes of ``size`` bytes each (one broadcast)."""
        self.writes += writes
        self.bytes += writes * size

    def reject(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1

    def add_to(self, total: Stats) -> None:
        """Add these numbers to ``total``'s."""
        total.started = min(total.started, self.started)
        for name in ("streams_opened", "streams_closed", "writes", "bytes", "pings"):
            setattr(total, name, getattr(total, name) + getattr(self, name))
        total.callback_errors += self.callback_errors
        _merge(self.disconnects, total.disconnects)
        _merge(self.closes, total.closes)
        _merge(self.rejected, total.rejected)

    def snapshot(self) -> dict[str, Any]:
        """This host's numbers as a plain dict (for logs and tests)."""
        return {
            "open_streams": self.open_streams,
            "streams_opened": self.streams_opened,
            "writes": self.writes,
            "bytes": self.bytes,
            "pings": self.pings,
            "disconnects": dict(self.disconnects),
            "closes": {reason.value: n for reason, n in self.closes.items()},
            "send_timeouts": self.disconnects.get("send_timeout", 0),
            "callback_errors": self.callback_errors,
            "rejected": dict(self.rejected),
        }


def _merge(mine: dict[K, int], total: dict[K, int]) -> None:
    for key, count in list(mine.items()):
        total[key] = total.get(key, 0) + count


class ProcessStats:
    """The whole process: every host's :class:`Stats` summed, and its own.

    Reading a host field (``STATS.writes``, ``STATS.closes``) sums the live
    hosts' numbers and those of hosts that are gone; nothing is counted
    twice on the hot path.
    """

    def __init__(self) -> None:
        self.started = time.time()
        self._live: set[Stats] = set()
        #: The numbers of hosts that are gone (and of refusals with no host).
        self._retired = Stats()
        self.loop_blocks = 0
        self.loop_blocked_seconds = 0.0
        self.broker_errors = 0
        #: Seconds between a broker publish and its delivery, last seen.
        self.broker_lag = 0.0
        self.auth_denied = 0

    def counted(self, owner: object) -> Stats:
        """New numbers for ``owner`` (a host), summed here until it is gone."""
        stats = Stats()
        self._live.add(stats)
        weakref.finalize(owner, self._retire, stats)
        return stats

    def _retire(self, stats: Stats) -> None:
        self._live.discard(stats)
        stats.add_to(self._retired)

    def total(self) -> Stats:
        """Every host's numbers summed, now."""
        total = Stats()
        total.started = self.started
        self._retired.add_to(total)
        for stats in list(self._live):
            stats.add_to(total)
        return total

    def reject(self, status: int) -> None:
        """Count a refusal that no host made (a server without a limiter)."""
        self._retired.reject(status)

    @property
    def streams_opened(self) -> int:
        return self.total().streams_opened

    @property
    def streams_closed(self) -> int:
        return self.total().streams_closed

    @property
    def open_streams(self) -> int:
        return self.total().open_streams

    @property
    def writes(self) -> int:
        return self.total().writes

    @property
    def bytes(self) -> int:
        return self.total().bytes

    @property
    def pings(self) -> int:
        return self.total().pings

    @property
    def disconnects(self) -> dict[str, int]:
        return self.total().disconnects

    @property
    def closes(self) -> dict[CloseReason, int]:
        return self.total().closes

    @property
    def callback_errors(self) -> int:
        return self.total().callback_errors

    @property
    def rejected(self) -> dict[int, int]:
        return self.total().rejected

    def snapshot(self) -> dict[str, Any]:
        """All numbers as a plain dict (for logs, tests and the soak report)."""
        numbers = self.total().snapshot()
        numbers.update({name: getattr(self, name) for name in PROCESS_FIELDS})
        del numbers["loop_blocked_seconds"]  # as it always was
        return numbers


#: The whole process (see :class:`ProcessStats`).
STATS = ProcessStats()
