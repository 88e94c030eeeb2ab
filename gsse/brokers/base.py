"""Broker: what every backend offers, and ``Broker.from_url``.

A backend provides :meth:`Broker.publish` and :meth:`Broker._subscribe`;
the rest (channel checks, the stream callback, :meth:`Broker.stream`) is
shared. ``redis`` is imported only when a ``redis://`` URL is used, so
``import gsse`` stays safe before ``monkey.patch_all()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.monkey import get_original
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from ..stream import StreamCallback
from ..stream import stream as sse_stream
from ..transport import Transport
from ..writer import SSEWriter
from .frames import check_channels

#: The environment variable ``gsse run --broker`` sets.
BROKER_ENV = "GSSE_BROKER"

_SCHEMES = {
    "memory": "memory",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
}


def _check_history(history: Any) -> int:
    if isinstance(history, bool) or not isinstance(history, int):
        raise TypeError(
            f"history must be an int number of events, not {type(history).__name__}"
        )
    if history < 1:
        raise ValueError(f"history must be at least 1 event, got {history!r}")
    return history


#: The real thread id (monkey-patching makes ``threading.get_ident`` per greenlet).
thread_ident = get_original("_thread", "get_ident")


def transport_of(writer: SSEWriter) -> Transport:
    """The transport under ``writer``: brokers write to it without waiting."""
    return writer._transport


def loop_of(writer: SSEWriter) -> tuple[Any, int]:
    """The hub and thread id of the event loop that owns ``writer``'s stream."""
    return writer._hub, writer._loop_thread


class Broker:
    """Channels that streams subscribe to, with history for replay.

    Create one with :meth:`from_url`; publish with :meth:`publish`; stream
    channels with ``event.subscribe(broker, *channels)`` in a gsse handler
    or ``return broker.stream(*channels)`` from any WSGI framework.

    :param history: how many recent events each channel keeps for replay.

    .. versionadded:: 0.1
    """

    def __init__(self, *, history: int = 1000) -> None:
        self.history = _check_history(history)

    @classmethod
    def from_url(cls, url: str | None = None, *, history: int = 1000) -> Broker:
        """The broker a URL names.

        :param url: ``memory://`` (one process) or ``redis://host:port/db``
            (``rediss://`` and ``unix://`` too; many processes and machines).
            Without one, the ``GSSE_BROKER`` environment variable (which
            ``gsse run --broker`` sets), else ``memory://``.
        :param history: events each channel keeps for replay.
        :raises ValueError: an unknown URL scheme.
        :raises ImportError: ``redis://`` without the ``redis`` package
            (``pip install 'gsse[redis]'``).
        """
        if url is None:
            url = os.environ.get(BROKER_ENV) or "memory://"
        if not isinstance(url, str):
            raise TypeError(f"the broker URL must be a str, got {url!r}")
        kind = _SCHEMES.get(urlsplit(url).scheme.lower())
        if kind == "memory":
            from .memory import MemoryBroker

            return MemoryBroker(history=history)
        if kind == "redis":
            from .redis import RedisBroker

            return RedisBroker(url, history=history)
        raise ValueError(
            f"unknown broker URL {url!r}: use memory:// or redis://host:6379/0"
        )

    def publish(self, channel: str, data: Any, *, event: str | None = None) -> str:
        """Send an event to every subscriber of ``channel``; keep it for replay.

        :param channel: the channel's name (printable text).
        :param data: ``str``, ``bytes`` (UTF-8) or any JSON-serialisable value.
        :param event: the event type (``None``: the browser's ``message``).
        :returns: the event's id, which is also its id on the wire.
        :raises ValueError: a bad channel name or event type, or no data.
        :raises TypeError: data that cannot be encoded.
        :raises gsse.BrokerUnavailable: the backend stayed unreachable.
        """
        raise NotImplementedError

    def subscriber(self, *channels: str) -> StreamCallback:
        """A stream callback that streams ``channels`` to its writer.

        ``event.subscribe(broker, ...)`` uses it; call it yourself to send
        something first and then follow the channels.

        :raises ValueError: a bad channel name.
        :raises TypeError: no channel, or a name that is not a ``str``.
        """
        names = check_channels(channels)

        def subscribe(writer: SSEWriter) -> None:
            hub, loop_thread = loop_of(writer)
            if thread_ident() != loop_thread:
                # Called from a thread-pool callback: subscriptions live in
                # the event loop, so start this one there and return.
                hub.loop.run_callback_threadsafe(
                    gevent.spawn, self._follow, writer, names
                )
                return
            self._follow(writer, names)

        subscribe.__qualname__ = f"{type(self).__name__}.subscriber{names!r}"
        return subscribe

    def stream(
        self,
        *channels: str,
        headers: Mapping[str, str] | Headers | None = None,
        retry: int | None = None,
        ping: float | None = None,
        send_timeout: float | None = None,
    ) -> Response:
        """A response that streams ``channels``; return it from any WSGI view.

        :param headers: extra response headers.
        :param retry: the client's reconnection time in ms, sent first.
        :param ping: seconds of idleness before a keep-alive comment.
        :param send_timeout: see :func:`gsse.stream`.
        """
        return sse_stream(
            self.subscriber(*channels),
            headers=headers,
            retry=retry,
            ping=ping,
            send_timeout=send_timeout,
        )

    def close(self) -> None:
        """Let go of the backend (connections, the reader greenlet)."""

    def _follow(self, writer: SSEWriter, channels: tuple[str, ...]) -> None:
        """In the event loop: subscribe, and let a shutdown end the stream.

        A subscription has nothing to finish, so a graceful shutdown closes
        it at once instead of after the grace period; the client resumes
        from ``Last-Event-ID`` when it reconnects.
        """
        writer._registry.end_at_shutdown(transport_of(writer))
        self._subscribe(writer, channels)

    def _subscribe(self, writer: SSEWriter, channels: tuple[str, ...]) -> None:
        raise NotImplementedError
