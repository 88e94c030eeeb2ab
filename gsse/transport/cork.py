"""Corking: a stream's writes wait for the loop's next turn, then go out once.

Every event a greenlet writes to a stream before it yields costs one
``send``, not one each: the first write of a batch registers the stream
here, and one loop callback per batch (not per stream) uncorks them all.
"""

from __future__ import annotations

from typing import Any
from typing import Protocol

#: A stream's writes are sent at once, not at the next yield, past this size.
CORK_BYTES = 16 * 1024


class Corked(Protocol):
    """A stream waiting for the cork's flush."""

    def _uncork(self) -> None: ...


class _Cork:
    """The streams of one event loop written since the loop last ran.

    One loop callback per batch (not per stream) sends each buffer once.
    """

    __slots__ = ("streams", "loop", "scheduled")

    def __init__(self, loop: Any) -> None:
        self.streams: list[Corked] = []
        self.loop = loop
        self.scheduled = False

    def add(self, transport: Corked) -> None:
        self.streams.append(transport)
        if not self.scheduled:
            self.scheduled = True
            self.loop.run_callback(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        streams, self.streams = self.streams, []
        for transport in streams:
            transport._uncork()


_corks: dict[int, _Cork] = {}


def cork_of(loop: Any) -> _Cork:
    """The cork of ``loop``, made on first use (one per event loop)."""
    cork = _corks.get(id(loop))
    if cork is None or cork.loop is not loop:
        cork = _corks[id(loop)] = _Cork(loop)
    return cork
