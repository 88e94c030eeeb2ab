"""SSEWriter: what a stream callback holds to send events.

Each call encodes first (so bad input raises before anything is written,
and a raise writes nothing), then hands whole events to the stream's
transport. In the event loop's thread that is a direct, non-blocking write;
from a thread-pool thread the write is handed to the loop (see
:mod:`gsse.bridge`), so every method is safe from any greenlet or thread.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import gevent
from gevent.monkey import get_original

from . import bridge
from .exceptions import ClientDisconnected
from .registry import StreamRegistry
from .transport import Transport
from .wire import encode_comment
from .wire import encode_event

# The real thread id: monkey-patching makes ``threading.get_ident`` return a
# greenlet's id instead.
_thread_ident = get_original("_thread", "get_ident")


class SSEWriter:
    """Sends events on one open stream.

    :param last_event_id: the ``Last-Event-ID`` request header, or ``None``.

    .. versionadded:: 0.1
    """

    __slots__ = ("_transport", "_registry", "_loop_thread", "_hub", "last_event_id")

    def __init__(
        self,
        transport: Transport,
        registry: StreamRegistry,
        last_event_id: str | None = None,
    ) -> None:
        self._transport = transport
        self._registry = registry
        self._loop_thread = _thread_ident()
        self._hub = gevent.get_hub()
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
        if _thread_ident() != self._loop_thread:
            bridge.write_from_thread(self._transport, payload, self._hub)
            return
        transport = self._transport
        transport.write(payload)
        if transport.full_since:
            transport.wait_drained()

    def close(self) -> None:
        """End the stream cleanly. Calling it again does nothing."""
        if _thread_ident() != self._loop_thread:
            bridge.call_in_loop(self._hub, self._transport.close)
            if self._transport.dropped:
                # A write this thread posted was lost: say so once, here.
                self._transport.dropped = False
                raise ClientDisconnected(
                    f"stream closed: {self._transport.close_reason}"
                )
        else:
            self._transport.close()

    @property
    def closed(self) -> bool:
        """``True`` once the stream has ended, for any reason."""
        return self._transport.closed

    @property
    def log_context(self) -> dict[str, object]:
        """The stream's id and path, as ``extra=`` for log records about it."""
        return self._transport.log_context

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
