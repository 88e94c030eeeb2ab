"""The heartbeat of a shared (Redis) :class:`gsse.Runs`, one greenlet per process.

Every :data:`HEARTBEAT` seconds, in one pipeline: renew the lease of each
run this process owns (and read their cancel flags), and check the leases
of runs that streams here follow but another process owns. A lease gone
means its owner died: the run is ended as ``interrupted`` (once, by
whichever process gets there first; see store_redis.py). The greenlet runs
only while there is something to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

from ..streams import Stream
from .store import RunStore
from .writer import RunWriter

logger = logging.getLogger(__name__)

#: Seconds between an owner's lease renewals (and its look for cancels).
HEARTBEAT = 0.5


class Heartbeat:
    """Leases, cancels and dead owners, for the runs of one process."""

    def __init__(
        self,
        store: RunStore,
        local: dict[str, RunWriter],
        end_orphan: Callable[[str], None],
    ) -> None:
        self._store = store
        #: The runs this process owns (shared with :class:`gsse.Runs`).
        self._local = local
        self._end_orphan = end_orphan
        #: Runs other processes own that streams here follow: how many each.
        self._followed: dict[str, int] = {}
        self._beat: gevent.Greenlet | None = None

    def watch(self, run_id: str, stream: Stream) -> None:
        """Count a follower here until its ``stream`` closes."""
        if run_id in self._local:
            return  # our own run: we are alive
        self._followed[run_id] = self._followed.get(run_id, 0) + 1
        stream.on_close(lambda _: self._unwatch(run_id))
        self.ensure()

    def _unwatch(self, run_id: str) -> None:
        left = self._followed.get(run_id, 0) - 1
        if left > 0:
            self._followed[run_id] = left
        else:
            self._followed.pop(run_id, None)

    def ensure(self) -> None:
        """Start the greenlet if it is not running."""
        if self._beat is None:
            self._beat = gevent.spawn(self._run)

    def _run(self) -> None:
        try:
            while self._local or self._followed:
                gevent.sleep(HEARTBEAT)
                try:
                    self.beat()
                except Exception as exc:
                    logger.warning("runs heartbeat failed (%s); retrying", exc)
        finally:
            self._beat = None

    def beat(self) -> None:
        """One beat: renew, pick up cancels, end runs whose owner died."""
        local = dict(self._local)
        # Finished runs still here are recording their end: keep their lease.
        counts = {run_id: w.count for run_id, w in local.items()}
        for run_id in self._store.heartbeat(counts):
            local[run_id]._cancel()
        remote = [run_id for run_id in self._followed if run_id not in local]
        for run_id in self._store.orphans(remote):
            self._end_orphan(run_id)
