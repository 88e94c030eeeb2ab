"""SSEWriter: what a stream callback holds to send events.

Each call encodes first (so bad input raises before anything is written,
and a raise writes nothing), then hands whole events to the stream's owner,
a :class:`~gsse.streams.Stream`: :meth:`~gsse.streams.Stream.send` in the
event loop's thread (it waits while the client is behind), and
:func:`gsse.bridge.send_from_thread` from a thread-pool thread (handed to
the loop), so every method is safe from any greenlet or thread.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import gevent
from gevent.monkey import get_original

from . import bridge
from .exceptions import ClientDisconnected
from .exceptions import CloseReason
from .registry import StreamRegistry
from .stats import Stats
from .streams import Stream
from .wire import encode_comment
from .wire import encode_event

logger = logging.getLogger(__name__)

# The real thread id: monkey-patching makes ``threading.get_ident`` return a
# greenlet's id instead.
_thread_ident = get_original("_thread", "get_ident")


class SSEWriter:
    """Sends events on one open stream.

    :param last_event_id: the ``Last-Event-ID`` request header, or ``None``.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_stream",
        "_registry",
        "_loop_thread",
        "_hub",
        "_closer",
        "_owner",
        "last_event_id",
    )

    def __init__(
        self,
        stream: Stream,
        registry: StreamRegistry,
        last_event_id: str | None = None,
    ) -> None:
        self._stream = stream
        self._registry = registry
        self._loop_thread = _thread_ident()
        self._hub = gevent.get_hub()
        #: The greenlet (or thread's greenlet) that called close(), if any.
        self._closer: object = None
        #: The callback's name while it owns the stream (see watch()).
        self._owner: str | None = None
        self.last_event_id = last_event_id

    def send_event(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Send one event.

        :param data: ``str`` (one ``data:`` line per line), ``bytes`` (UTF-8),
            any other value as compact JSON, or ``None`` for no data line.
        :param event: the event type (the browser's ``addEventListener`` name).
        :param id: the event id, which the client sends back as
            ``Last-Event-ID`` when it reconnects.
        :param retry: the client's reconnection time in milliseconds.
        :raises ValueError: a field would break the framing (CR/LF in ``event``
            or ``id``, NUL in ``id``, negative ``retry``); nothing is sent.
        :raises TypeError: a field has the wrong type; nothing is sent.
        :raises gsse.ClientDisconnected: the stream has ended.
        """
        self._write(encode_event(data, event=event, id=id, retry=retry))

    def comment(self, text: str = "") -> None:
        """Send a comment (``: text``), which no client shows: a keep-alive.

        :raises gsse.ClientDisconnected: the stream has ended.
        """
        self._write(encode_comment(text))

    def write_raw(self, payload: bytes) -> None:
        """Send bytes that are already whole ``text/event-stream`` blocks.

        For code that encodes once and sends to many streams (see
        :func:`gsse.wire.encode_event`); nothing is checked here.
        """
        self._write(payload)

    def _write(self, payload: bytes) -> None:
        if self._closer is not None:
            raise ClientDisconnected(
                "stream closed: writer.close() ended it, so nothing more can be"
                " sent on it (send every event before closing)"
            )
        if _thread_ident() != self._loop_thread:
            bridge.send_from_thread(self._stream, payload, self._hub)
        else:
            self._stream.send(payload)

    def close(self) -> None:
        """End the stream cleanly. Calling it again does nothing."""
        self._end(CloseReason.CLOSED_BY_APP)

    def _end(self, reason: CloseReason, detail: str = "") -> None:
        if self._closer is None and not self._stream.closed:
            # Only a close that ends the stream counts (``with writer:``
            # leaving on the error of a client that went away ends nothing).
            self._closer = gevent.getcurrent()
        if _thread_ident() != self._loop_thread:
            bridge.call_in_loop(self._hub, self._stream.close, reason, detail)
            if self._stream.dropped:
                # A write this thread posted was lost: say so once, here.
                self._stream.dropped = False
                raise ClientDisconnected(f"stream closed: {self._stream.close_text}")
        else:
            self._stream.close(reason, detail)

    @property
    def closed(self) -> bool:
        """``True`` once the stream has ended, for any reason."""
        return self._stream.closed

    @property
    def closed_here(self) -> bool:
        """Whether this greenlet (or thread) closed the stream with close()."""
        return self._closer is not None and self._closer is gevent.getcurrent()

    def watch(self, owner: str) -> None:
        """Warn if this writer is dropped while its stream is open.

        A writer nothing refers to can never send or close again: its stream
        stays open (pinged) until the client leaves, which is almost always
        a forgotten ``close()``. ``owner`` names the callback in the warning.
        """
        self._owner = owner

    def __del__(self) -> None:
        # No finalizer object per stream: a slot and this method cost nothing
        # until the writer goes (idle streams' memory is a benchmark).
        owner = getattr(self, "_owner", None)  # None if __init__ failed early
        if owner is not None and owner not in _warned_dropped:
            if not self._stream.closed:
                _dropped_open(self._stream, owner, self._hub, self._loop_thread)

    @property
    def log_context(self) -> dict[str, object]:
        """The stream's id and path, as ``extra=`` for log records about it."""
        return self._stream.log_context

    @property
    def shutting_down(self) -> bool:
        """``True`` once the server began a graceful shutdown: say goodbye."""
        return self._registry.shutting_down

    def __enter__(self) -> SSEWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<SSEWriter {state}>"


def hand_over(writer: SSEWriter) -> Stream:
    """Give ``writer``'s stream to another producer (a broker subscription).

    The producer sends on the stream and closes it; the writer may go.
    """
    writer._owner = None
    return writer._stream


def end_stream(writer: SSEWriter, reason: CloseReason, detail: str = "") -> None:
    """Close ``writer``'s stream as its ``close()`` does, saying why.

    For gsse's own code that ends a stream for a reason other than the
    app's ``close()`` (a callback that failed).
    """
    writer._end(reason, detail)


#: Callbacks already warned about, so a habit warns once, not per stream.
_warned_dropped: set[str] = set()


def _dropped_open(stream: Stream, owner: str, hub: Any, loop_thread: int) -> None:
    if stream.closed or owner in _warned_dropped:
        return
    # Finalizers may run anywhere (even in the hub): log from a greenlet.
    if _thread_ident() == loop_thread:
        gevent.spawn(_warn_dropped, stream, owner)
    else:
        hub.loop.run_callback_threadsafe(gevent.spawn, _warn_dropped, stream, owner)


def _warn_dropped(stream: Stream, owner: str) -> None:
    if stream.closed or owner in _warned_dropped:
        return
    _warned_dropped.add(owner)
    logger.warning(
        "stream %d %s: callback %s returned without closing its stream and"
        " nothing holds its writer, so nothing can send on it or close it: it"
        " stays open until the client leaves (use `with writer:` or"
        " writer.close(); this is said once per callback)",
        stream.stream_id,
        stream.path,
        owner,
        extra=stream.log_context,
    )


def stats_of(writer: SSEWriter) -> Stats:
    """The numbers of the host that serves ``writer``'s stream."""
    return writer._stream.stats
