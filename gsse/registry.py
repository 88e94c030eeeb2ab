"""The open streams of one host: keep-alive, send timeouts and shutdown.

One greenlet per registry ticks while streams are open (each tick is
:meth:`gsse.streams.Stream.keep_alive`), instead of a timer per stream: a
tick costs a few attribute reads per stream, and an idle stream then holds
no timer, greenlet or closure of its own. A stream gets a ping once it has
written nothing for ``ping`` seconds (measured in ticks, so up to one tick
later).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import gevent
from gevent.event import Event as GeventEvent

from .exceptions import CloseReason
from .logsafe import escape
from .streams import Stream
from .transport.cork import Corks

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: Called with each stream added and its request's environ (limits, metrics).
AddHook = Callable[[Stream, "WSGIEnvironment"], Any]

logger = logging.getLogger(__name__)

#: The longest pause between ticks; shorter when a ping or timeout asks.
MAX_TICK = 1.0

#: Streams ticked between two yields to the event loop.
TICK_SLICE = 256


class StreamRegistry:
    """Tracks open streams for keep-alive, send timeouts and graceful shutdown.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._streams: set[Stream] = set()
        self._tick = MAX_TICK
        self._ticker: gevent.Greenlet | None = None
        self._emptied = GeventEvent()
        self._emptied.set()
        #: ``True`` once a graceful shutdown has begun.
        self.shutting_down = False
        #: Hooks called with every stream added (see :data:`AddHook`).
        self.add_hooks: list[AddHook] = []
        #: Streams with nothing to finish, ended at once by a shutdown.
        self._idle: weakref.WeakSet[Stream] = weakref.WeakSet()
        #: This host's write batching, one cork per event loop it serves on.
        self.corks = Corks()

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: Stream, environ: WSGIEnvironment | None = None) -> None:
        """Track ``stream`` until it closes.

        :param environ: the stream's request, for log context and add hooks.
        """
        if environ is not None:
            # Logged with every line about the stream: escaped, as client data.
            stream.path = escape(environ.get("PATH_INFO", ""), 200)
        if self.shutting_down:
            stream.close(CloseReason.SHUTDOWN)
            return
        self._streams.add(stream)
        self._emptied.clear()
        stream.on_close(self._discard)
        for period in (stream.ping, stream.send_timeout):
            if period > 0:
                self._tick = min(self._tick, max(period / 4, 0.01))
        if self._ticker is None:
            self._ticker = gevent.spawn(self._run_ticker)
        for hook in self.add_hooks:
            hook(stream, environ if environ is not None else {})

    def end_at_shutdown(self, stream: Stream) -> None:
        """Let a graceful shutdown end ``stream`` at once, not after the grace.

        For streams no callback drives, such as channel subscriptions: they
        have nothing to finish, and their clients resume from
        ``Last-Event-ID`` when they reconnect.
        """
        if self.shutting_down:
            stream.close(CloseReason.SHUTDOWN)
        else:
            self._idle.add(stream)

    def _discard(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if not self._streams:
            self._emptied.set()

    def _run_ticker(self) -> None:
        try:
            while self._streams:
                gevent.sleep(self._tick)
                now = time.monotonic()
                for i, stream in enumerate(list(self._streams), 1):
                    stream.keep_alive(now)
                    if not i % TICK_SLICE:
                        # Let requests and other streams run between slices:
                        # ticking 20k streams, with a second's worth of
                        # pings due, takes tens of milliseconds.
                        gevent.sleep(0)
        finally:
            self._ticker = None
            self._tick = MAX_TICK

    def wait_empty(self, timeout: float | None) -> bool:
        """Wait until every stream has ended; ``False`` on timeout."""
        return bool(self._emptied.wait(timeout))

    def shutdown(self, graceful_timeout: float) -> int:
        """Tell streams to finish, wait for them, then close the rest.

        Callbacks see ``writer.shutting_down`` become ``True`` and may say
        goodbye; streams still open after ``graceful_timeout`` seconds are
        closed with correct framing. Returns how many had to be closed.
        """
        self.shutting_down = True
        for stream in list(self._idle):
            stream.close(CloseReason.SHUTDOWN)
        open_now = len(self._streams)
        if open_now:
            logger.info(
                "waiting up to %.1f s for %d open stream(s) to finish",
                graceful_timeout,
                open_now,
            )
        self.wait_empty(graceful_timeout)
        remaining = list(self._streams)
        for stream in remaining:
            stream.close(CloseReason.SHUTDOWN_DEADLINE)
        if remaining:
            logger.info(
                "closed %d stream(s) still open after the grace period", len(remaining)
            )
        return len(remaining)
