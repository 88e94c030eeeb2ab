"""The I/O end of a stream: what a :class:`~gsse.streams.Stream` drives.

A transport knows where bytes go and nothing of limits, keep-alive or why a
stream ends: its :class:`~gsse.streams.Stream` fills ``stream.buffer`` and
tells the transport when to act (:meth:`Transport.wake`, :meth:`finish`,
:meth:`release`); the transport takes bytes from the front of that buffer
and reports back to the stream (drained, progress, client gone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..streams import Stream


class Transport:
    """Where one stream's bytes go; subclasses say how."""

    __slots__ = ("stream", "chunked", "corked")

    def __init__(self, chunked: bool) -> None:
        #: The stream this transport serves (set by :meth:`attach`).
        self.stream: Stream | None = None
        #: Whether the stream frames its writes as HTTP/1.1 chunks.
        self.chunked = chunked
        #: Holding bytes for the cork's flush (see :mod:`.cork`).
        self.corked = False

    def attach(self, stream: Stream) -> Callable[[], object]:
        """Serve ``stream`` from now on (called once, by the stream).

        Returns what the stream calls each time its buffer gets its first
        bytes since it was last empty (a bound call, as it runs per write).
        """
        self.stream = stream
        return self.wake

    def wake(self) -> None:
        """The stream's buffer got its first bytes since it was last empty."""
        raise NotImplementedError

    def uncork(self) -> None:
        """Send what the buffer holds now, not at the loop's next turn."""

    def finish(self) -> None:
        """The stream was closed: send what is left (its end included), then stop."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop OS resources at once (socket, watchers); unsent bytes are lost."""
        raise NotImplementedError

    def stalled(self) -> None:
        """The stream timed out its send: unblock whatever writes it out."""

    def kernel_sent(self) -> bool:
        """Whether the client took bytes the kernel held since last asked."""
        return False
