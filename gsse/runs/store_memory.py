"""``memory://`` runs: their metadata in a dict of the one process.

Every run of a memory broker is owned by this process, so there are no
leases and cancelling sets the owner's flag directly (see
:class:`gsse.Runs`). A finished run is dropped ``ttl`` seconds after it
ended, checked whenever a run starts or is looked up.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict

from ..brokers import Broker
from .store import RUNNING
from .store import RunInfo

_stores: weakref.WeakKeyDictionary[Broker, MemoryRunStore] = weakref.WeakKeyDictionary()


def memory_store(broker: Broker) -> MemoryRunStore:
    """The one store of ``broker``: every :class:`gsse.Runs` on it shares it."""
    store = _stores.get(broker)
    if store is None:
        store = _stores[broker] = MemoryRunStore()
    return store


class MemoryRunStore:
    """Runs' metadata in this process."""

    def __init__(self) -> None:
        self._runs: dict[str, RunInfo] = {}
        #: Finished runs, oldest end first, with when each is dropped.
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self.cancelled: set[str] = set()

    def _expire(self) -> None:
        now = time.monotonic()
        expiry = self._expiry
        while expiry:
            run_id, drop_at = next(iter(expiry.items()))
            if drop_at > now:
                return
            del expiry[run_id]
            self._runs.pop(run_id, None)

    def create(self, run_id: str, origin: str, started: float) -> None:
        self._expire()
        self._runs[run_id] = RunInfo(RUNNING, started, None, 0, origin, None)

    def get(self, run_id: str) -> RunInfo | None:
        self._expire()
        return self._runs.get(run_id)

    def finish(
        self, run_id: str, status: str, ended: float, count: int, *, orphan: bool
    ) -> bool:
        info = self._runs.get(run_id)
        if info is None or info.finished or orphan:
            return False
        self._runs[run_id] = info._replace(status=status, ended=ended, events=count)
        self.cancelled.discard(run_id)
        return True

    def ended(self, run_id: str, end_id: str, ttl: float) -> None:
        info = self._runs.get(run_id)
        if info is not None:
            self._runs[run_id] = info._replace(end_id=end_id)
            self._expiry[run_id] = time.monotonic() + ttl

    def cancel(self, run_id: str) -> bool:
        info = self.get(run_id)
        if info is None or info.finished:
            return False
        self.cancelled.add(run_id)
        return True

    def heartbeat(self, counts: dict[str, int]) -> set[str]:
        for run_id, count in counts.items():
            info = self._runs.get(run_id)
            if info is not None and not info.finished:
                self._runs[run_id] = info._replace(events=count)
        return self.cancelled & counts.keys()

    def orphans(self, run_ids: list[str]) -> list[str]:
        return []  # one process: an owner never dies while others live
