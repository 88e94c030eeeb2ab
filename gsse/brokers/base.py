"""Broker: what every backend offers, and ``Broker.from_url``.

A backend provides :meth:`Broker.publish` and :meth:`Broker._subscribe`;
the rest (channel checks, the stream callback, :meth:`Broker.stream`) is
shared. Backends import this module, never the other way round: they are
found by URL scheme (:func:`register_backend`, :mod:`gsse.brokers.backends`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import Literal
from typing import overload

import gevent
from gevent.monkey import get_original
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from ..stream import StreamCallback
from ..stream import stream as sse_stream
from ..streams import Stream
from ..writer import SSEWriter
from ..writer import hand_over
from .compaction import check_history_ttl
from .compaction import check_snapshot
from .frames import check_channel
from .frames import check_channels
from .frames import encode_body
from .presence import ChannelPresence
from .presence import check_presence_events
from .presence import encode_presence
from .urls import BROKER_ENV as BROKER_ENV
from .urls import URL_OPTIONS as URL_OPTIONS
from .urls import BackendFactory as BackendFactory
from .urls import build_from_url
from .urls import register_backend as register_backend

#: The largest event ``publish`` accepts by default (its encoded bytes).
DEFAULT_MAX_EVENT_SIZE = 1024 * 1024

#: The most channels one stream may follow by default.
DEFAULT_MAX_CHANNELS = 100


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int of at least ``minimum``, else raise saying so."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return value


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


def stream_of(writer: SSEWriter) -> Stream:
    """The stream under ``writer``: brokers send on it without waiting."""
    return hand_over(writer)


def loop_of(writer: SSEWriter) -> tuple[Any, int]:
    """The hub and thread id of the event loop that owns ``writer``'s stream."""
    return writer._hub, writer._loop_thread


class Broker(ChannelPresence):
    """Channels that streams subscribe to, with history for replay.

    Create one with :meth:`from_url`; publish with :meth:`publish`; stream
    channels with ``event.subscribe(broker, *channels)`` in a gsse handler
    or ``return broker.stream(*channels)`` from any WSGI framework.

    :param history: how many recent events each channel keeps for replay.
    :param max_event_size: the largest event :meth:`publish` accepts, in
        encoded bytes.
    :param max_channels: the most channels one stream may follow.
    :param history_ttl: seconds an event is kept for replay (``None``: no limit).

    .. versionadded:: 0.1
    """

    max_event_size = DEFAULT_MAX_EVENT_SIZE
    max_channels = DEFAULT_MAX_CHANNELS

    def __init__(
        self,
        *,
        history: int = 1000,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        history_ttl: float | None = None,
    ) -> None:
        self.history = _check_history(history)
        self.history_ttl = check_history_ttl(history_ttl)
        self.set_limits(max_event_size=max_event_size, max_channels=max_channels)
        #: Channels that keep another number of events than ``history``
        #: (see :meth:`keep_history`).
        self.history_of: dict[str, int] = {}

    def keep_history(self, channel: str, events: int | None) -> None:
        """Let ``channel`` keep ``events`` events instead of ``history``.

        For channels that must hold a whole bounded log, such as a run's
        (:class:`gsse.Runs`): ``history`` is sized for chatty channels and
        would cut it short. ``None`` goes back to ``history``. Only the
        process that publishes to ``channel`` needs to say so.
        """
        if events is None:
            self.history_of.pop(channel, None)
        else:
            self.history_of[channel] = check_count("events", events)

    def set_limits(
        self, *, max_event_size: int | None = None, max_channels: int | None = None
    ) -> None:
        """Change the event size and channels-per-stream limits (``None``: keep)."""
        if max_event_size is not None:
            self.max_event_size = check_count("max_event_size", max_event_size)
        if max_channels is not None:
            self.max_channels = check_count("max_channels", max_channels)

    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        history: int | None = None,
        max_event_size: int | None = None,
        max_channels: int | None = None,
        history_ttl: float | None = None,
        **options: int,
    ) -> Broker:
        """The broker a URL names.

        Options may also be given in the URL's query, e.g.
        ``memory://?history=100&max_history_bytes=10000000``; a keyword
        argument wins over the URL.

        :param url: ``memory://`` (one process) or ``redis://host:port/db``
            (``rediss://`` and ``unix://`` too; many processes and machines),
            ``redis+sentinel://host:port,host:port/<service>`` (a primary
            that Sentinel watches) or ``redis+cluster://host:port,host:port``
            (Redis Cluster, channels spread over its shards).
            Without one, the ``GSSE_BROKER`` environment variable (which
            ``gsse run --broker`` sets), else ``memory://``.
        :param history: events each channel keeps for replay (default 1000).
        :param history_ttl: seconds each event is kept for replay (default
            ``None``: no age limit). A ``Last-Event-ID`` from before expired
            events gets the ``reset`` event, as when history ran out by count.
        :param max_event_size: the largest event ``publish`` accepts, in
            encoded bytes (default 1 MiB).
        :param max_channels: the most channels one stream may follow
            (default 100); a stream asking for more gets ``400``.
        :param options: ``memory://`` only: ``max_history_events``,
            ``max_history_bytes`` and ``history_idle_ttl`` (see
            :class:`~gsse.brokers.memory.MemoryBroker`); for both:
            ``presence_ttl``, seconds before the presence entries of a
            process that died without a goodbye expire on Redis (default 30).
        :raises ValueError: an unknown URL scheme or a bad option.
        :raises TypeError: an unknown option.
        :raises ImportError: ``redis://`` without the ``redis`` package
            (``pip install 'gsse[redis]'``).
        """
        given = {
            "history": history,
            "max_event_size": max_event_size,
            "max_channels": max_channels,
            "history_ttl": history_ttl,
            **options,
        }
        return build_from_url(url, given)

    @overload
    def publish(
        self,
        channel: str,
        data: Any,
        *,
        event: str | None = None,
        key: str | None = None,
        return_delivery: Literal[False] = False,
    ) -> str: ...
    @overload
    def publish(
        self,
        channel: str,
        data: Any,
        *,
        event: str | None = None,
        key: str | None = None,
        return_delivery: Literal[True],
    ) -> tuple[str, int]: ...
    def publish(
        self,
        channel: str,
        data: Any,
        *,
        event: str | None = None,
        key: str | None = None,
        return_delivery: bool = False,
    ) -> Any:
        """Send an event to every subscriber of ``channel``; keep it for replay.

        :param channel: the channel's name (printable text).
        :param data: ``str``, ``bytes`` (UTF-8) or any JSON-serialisable value.
        :param event: the event type (``None``: the browser's ``message``).
        :param key: makes the channel compacted: this event supersedes the
            channel's earlier events with the same key (never replayed, and
            dropped from a slow client's queue); ``snapshot=True`` streams
            start with the newest event of every key.
        :param return_delivery: return ``(id, n)``: ``n`` live streams, in this
            process and the others, were handed the event (on Redis: those
            counted within ``publish_timeout``, a lower bound when a process
            is slow). ``0``: nobody was listening (send an e-mail instead).
        :returns: the event's id, which is also its id on the wire.
        :raises ValueError: a bad channel name, event type or key, no data, or an
            event larger than ``max_event_size``.
        :raises TypeError: data that cannot be encoded.
        :raises gsse.BrokerUnavailable: the backend stayed unreachable.
        """
        raise NotImplementedError

    def publish_many(self, events: list[tuple[str, Any, str | None]]) -> list[str]:
        """Publish ``(channel, data, event)`` items in order; their ids.

        Backends with a network round trip per publish (Redis) send them
        all at once. The checks and errors are :meth:`publish`'s.
        """
        for channel, data, event in events:  # all checked before any is sent
            self._encode(channel, data, event)
        return [
            self.publish(channel, data, event=event) for channel, data, event in events
        ]

    def _encode(self, channel: str, data: Any, event: str | None) -> bytes:
        """Check ``channel`` and encode the event once, within ``max_event_size``.

        Every backend's ``publish`` starts here, so the limit holds for all.
        """
        check_channel(channel)
        raw = encode_body(data, event)
        if len(raw) > self.max_event_size:
            raise ValueError(
                f"the event for channel {channel!r} is {len(raw)} bytes encoded,"
                f" over max_event_size={self.max_event_size}: publish a"
                " reference (an id or URL) to large data, or raise max_event_size"
                " in Broker.from_url()"
            )
        return raw

    def subscriber(
        self,
        *channels: str,
        presence: dict[str, Any] | None = None,
        presence_events: bool = False,
        snapshot: bool = False,
    ) -> StreamCallback:
        """A stream callback that streams ``channels`` to its writer.

        :param presence: this stream's entry in :meth:`presence` (any
            JSON-serialisable dict), or ``None``: anonymous, only counted.
        :param presence_events: send this stream ``event: join`` and
            ``event: leave`` with a member's dict as JSON data, first for
            every member already there (one channel only; never replayed).
        :param snapshot: first send the newest event of every key of each
            channel (see :meth:`publish`), then live events, with no gap and
            no duplicate; a ``Last-Event-ID`` that resumes gets the replay
            instead, one that cannot gets its ``reset`` and then the snapshot.

        ``event.subscribe(broker, ...)`` uses it; call it yourself to send
        something first and then follow the channels.

        Channel names usually come from the request, so a bad or missing one
        raises :class:`~gsse.brokers.frames.ChannelRefused` (a werkzeug
        ``BadRequest``): gsse apps and Flask answer ``400``, with no traceback.

        :raises ValueError: a bad channel name, a repeat, or more than
            ``max_channels`` (also a ``400 Bad Request``).
        :raises TypeError: no channel or ``None`` (also a ``400``), or a name
            that is not a ``str``.
        """
        names = check_channels(channels, self.max_channels)
        member = (
            encode_presence(presence),
            check_presence_events(presence_events, names),
        )
        snapshot = check_snapshot(snapshot)

        def subscribe(writer: SSEWriter) -> None:
            hub, loop_thread = loop_of(writer)
            if thread_ident() != loop_thread:
                # Called from a thread-pool callback: subscriptions live in
                # the event loop, so start this one there and return.
                hub.loop.run_callback_threadsafe(
                    gevent.spawn, self._follow, writer, names, member, snapshot
                )
                return
            self._follow(writer, names, member, snapshot)

        subscribe.__qualname__ = f"{type(self).__name__}.subscriber{names!r}"
        return subscribe

    def stream(
        self,
        *channels: str,
        headers: Mapping[str, str] | Headers | None = None,
        retry: int | None = None,
        ping: float | None = None,
        send_timeout: float | None = None,
        presence: dict[str, Any] | None = None,
        presence_events: bool = False,
        snapshot: bool = False,
    ) -> Response:
        """A response that streams ``channels``; return it from any WSGI view.

        ``presence``, ``presence_events`` and ``snapshot``: :meth:`subscriber`'s.

        :param headers: extra response headers.
        :param retry: the client's reconnection time in ms, sent first.
        :param ping: seconds of idleness before a keep-alive comment.
        :param send_timeout: see :func:`gsse.stream`.
        """
        return sse_stream(
            self.subscriber(
                *channels,
                presence=presence,
                presence_events=presence_events,
                snapshot=snapshot,
            ),
            headers=headers,
            retry=retry,
            ping=ping,
            send_timeout=send_timeout,
        )

    def close(self) -> None:
        """Let go of the backend (connections, the reader greenlet)."""

    def live_subscribers(self, channel: str) -> int:
        """Streams of this process that receive ``channel``'s live events now.

        A stream counts once its replay is sent, so an event published after
        this says ``1`` reaches it: for dashboards, and for code (or tests)
        that must not publish before a listener is there.
        """
        raise NotImplementedError

    def _follow(
        self,
        writer: SSEWriter,
        channels: tuple[str, ...],
        member: tuple[str | None, bool] = (None, False),
        snapshot: bool = False,
    ) -> None:
        """In the event loop: subscribe, and let a shutdown end the stream.

        A subscription has nothing to finish, so a graceful shutdown closes
        it at once instead of after the grace period; the client resumes
        from ``Last-Event-ID`` when it reconnects.
        """
        stream = stream_of(writer)
        writer._registry.end_at_shutdown(stream)
        self._subscribe(writer, channels, snapshot=snapshot)
        # Counted once live (its replay sent), so "1" means it gets the next.
        self._members().join(stream, channels, *member)

    def _subscribe(
        self, writer: SSEWriter, channels: tuple[str, ...], *, snapshot: bool = False
    ) -> None:
        raise NotImplementedError
