"""Corking: a stream's writes wait for the loop's next turn, then go out once.

Every event a greenlet writes to a stream before it yields costs one
``send``, not one each: the first write of a batch registers the stream
here, and one loop callback per batch (not per stream) uncorks them all.

The corks belong to a host (:class:`Corks`, one per stream registry), one
per event loop it serves on, weakly keyed by the loop's hub: they end with
the host or the loop, and two servers in one process share none.
"""

from __future__ import annotations

import weakref
from typing import Any
from typing import Protocol

import gevent

#: A stream's writes are sent at once, not at the next yield, past this size.
CORK_BYTES = 16 * 1024


class Corked(Protocol):
    """A stream's transport waiting for the cork's flush."""

    corked: bool

    def _uncork(self) -> None: ...


class _Cork:
    """The streams of one event loop written since the loop last ran.

    One loop callback per batch (not per stream) sends each buffer once.
    """

    __slots__ = ("streams", "loop", "scheduled", "flushes")

    def __init__(self, loop: Any) -> None:
        self.streams: list[Corked] = []
        self.loop = loop
        self.scheduled = False
        #: Batches sent so far.
        self.flushes = 0

    def add(self, transport: Corked) -> None:
        transport.corked = True
        self.streams.append(transport)
        if not self.scheduled:
            self.scheduled = True
            self.loop.run_callback(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        self.flushes += 1
        streams, self.streams = self.streams, []
        for transport in streams:
            transport._uncork()


class Corks:
    """A host's corks, one per event loop, dropped with the loop's hub."""

    __slots__ = ("_by_hub",)

    def __init__(self) -> None:
        # Keyed by the hub (a loop cannot be weakly referenced): a hub that
        # is destroyed takes its cork, and the loop the cork holds, with it.
        self._by_hub: weakref.WeakKeyDictionary[Any, _Cork] = (
            weakref.WeakKeyDictionary()
        )

    def __len__(self) -> int:
        return len(self._by_hub)

    def of(self, hub: Any = None) -> _Cork:
        """The cork of ``hub`` (default: this thread's), made on first use."""
        if hub is None:
            hub = gevent.get_hub()
        cork = self._by_hub.get(hub)
        if cork is None or cork.loop is not hub.loop:
            cork = self._by_hub[hub] = _Cork(hub.loop)
        return cork
