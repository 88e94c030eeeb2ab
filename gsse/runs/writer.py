"""RunWriter: what a run's producer holds, and the run's place in shutdown.

The producer writes with the :class:`~gsse.SSEWriter` methods; each event
is published to the run's channel (so it is kept for followers who come
later or reconnect) and counted against the run's bounds. From a pool
thread (``blocking=True``) the publish is handed to the event loop.

A running run is tracked by its host's stream registry as a
:class:`~gsse.streams.Stream` without a client (:func:`run_stream`, over
a transport that moves no bytes): a graceful shutdown waits for it like
any open stream (``writer.shutting_down`` turns ``True``), and one still
going when the grace period ends is ended as ``interrupted``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import gevent

from ..bridge import call_in_greenlet
from ..brokers import Broker
from ..brokers.base import thread_ident
from ..brokers.frames import encode_body
from ..exceptions import ClientDisconnected
from ..host import Host
from ..settings import ResolvedSettings
from ..streams import Stream
from ..transport.base import Transport
from ..wire import encode_comment
from .store import CANCELLED
from .store import DONE
from .store import ERROR
from .store import INTERRUPTED

logger = logging.getLogger(__name__)

#: The event type of a run's last event; a producer may not send it.
END = "end"
#: The event type of the marker published when a run starts: followers
#: resume after it, so it never reaches them.
START = "gsse-run-start"


def _publish(writer: RunWriter, channel: str, data: Any, event: str | None) -> None:
    writer._broker.publish(channel, data, event=event)


class RunLimitExceeded(ValueError):
    """The run reached its ``max_events`` or ``max_bytes`` (see :class:`gsse.Runs`)."""


class NoClient(Transport):
    """The transport of a run's stream: there is no client, no byte moves."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(chunked=False)

    def wake(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def release(self) -> None:
        pass


def run_stream(run_id: str, host: Host) -> Stream:
    """A running run as its host sees it: a stream with no client, no ping.

    Counted in the host's numbers like any stream; nothing is ever sent on
    it (the run's events go to its channel); closing it ends the run.
    """
    settings = ResolvedSettings(ping=0, send_timeout=0, buffer_size=1)
    stream = Stream(NoClient(), settings, host.stats)
    stream.path = f"(run {run_id[:8]}...)"
    return stream


class RunWriter:
    """Sends a run's events; the producer's first argument.

    .. versionadded:: 0.3
    """

    __slots__ = (
        "run_id",
        "channel",
        "count",
        "size",
        "finished",
        "stream",
        "_broker",
        "_host",
        "_hub",
        "_loop_thread",
        "_max_events",
        "_max_bytes",
        "_cancelled",
        "_send",
        "failed",
        "end_id",
    )

    def __init__(
        self,
        run_id: str,
        channel: str,
        broker: Broker,
        host: Host,
        max_events: int,
        max_bytes: int,
        send: Callable[[RunWriter, str, Any, str | None], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.channel = channel
        #: Events and encoded bytes sent so far.
        self.count = 0
        self.size = 0
        #: Set once the run has its final status.
        self.finished = False
        #: The run, as its host's registry tracks it (see :func:`run_stream`).
        self.stream = run_stream(run_id, host)
        self._broker = broker
        self._host = host
        self._hub = gevent.get_hub()
        self._loop_thread = thread_ident()
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._cancelled = False
        #: How events leave (default: ``broker.publish``, in the loop).
        self._send = send or _publish
        #: Why an earlier event of this run was not published (see outbox.py).
        self.failed: Exception | None = None
        #: The ``end`` event's id, once published.
        self.end_id: str | None = None

    @property
    def cancelled(self) -> bool:
        """``True`` once someone called ``runs.cancel()``: stop and return.

        A plain attribute read, cheap enough for every token, from a
        greenlet or a pool thread. Sending after it raises
        :class:`gsse.ClientDisconnected`, so a loop ends by itself too.
        """
        return self._cancelled

    def _cancel(self) -> None:
        self._cancelled = True

    @property
    def shutting_down(self) -> bool:
        """``True`` once the server began a graceful shutdown: finish soon."""
        return self._host.shutting_down

    @property
    def closed(self) -> bool:
        """``True`` once the run has ended (or was cancelled)."""
        return self.finished or self._cancelled

    @property
    def last_event_id(self) -> None:
        """A run is not a request: there is no ``Last-Event-ID`` (always ``None``)."""
        return None

    def send_event(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Publish one event of the run to its followers, now and later.

        As :meth:`gsse.SSEWriter.send_event`, except that the broker gives
        each event its id (``id`` must be ``None``), ``retry`` is not kept,
        and ``data`` is required (it is what followers get).

        :raises RunLimitExceeded: the run would pass ``max_events`` or
            ``max_bytes`` (a ``ValueError``); nothing is sent.
        :raises ValueError: ``event`` is ``"end"`` (gsse's last event),
            ``id``/``retry`` given, no data, or a bad field.
        :raises gsse.ClientDisconnected: the run was cancelled or has ended.
        """
        if id is not None or retry is not None:
            raise ValueError(
                "a run's events get their ids from the broker and keep no retry:"
                " call send_event(data, event=...) without id= or retry="
            )
        if event == END:
            raise ValueError(
                'event="end" is the run\'s final event, which gsse sends when the'
                " producer returns: use another event type"
            )
        raw = encode_body(data, event)
        self._check_open()
        if self.count >= self._max_events or self.size + len(raw) > self._max_bytes:
            raise RunLimitExceeded(
                f"run {self.run_id} is full: {self.count} events, {self.size} bytes"
                f" sent, and the limits are max_events={self._max_events},"
                f" max_bytes={self._max_bytes}; raise them in gsse.Runs(...), or"
                " send less (whole sentences instead of single tokens)"
            )
        self.count += 1
        self.size += len(raw)
        if thread_ident() == self._loop_thread:
            self._send(self, self.channel, data, event)
        else:
            call_in_greenlet(self._hub, self._send, self, self.channel, data, event)

    def _check_open(self) -> None:
        if self.failed is not None:
            raise self.failed
        if self._cancelled:
            raise ClientDisconnected(f"run {self.run_id} was cancelled")
        if self.finished:
            raise ClientDisconnected(f"run {self.run_id} has ended")

    def comment(self, text: str = "") -> None:
        """Accepted and dropped: a run keeps events only (followers get pings).

        :raises ValueError: ``text`` is not text (as ``SSEWriter.comment``).
        :raises gsse.ClientDisconnected: the run was cancelled or has ended.
        """
        encode_comment(text)
        self._check_open()

    def close(self) -> None:
        """Nothing to do: the run ends when the producer returns."""

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "running"
        return f"<RunWriter {self.run_id} {state} events={self.count}>"


def produce(
    writer: RunWriter,
    producer: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> str:
    """Run the producer; its final status (a failure's traceback is logged).

    :raises BaseException: what is not an ``Exception`` (``GreenletExit``).
    """
    try:
        producer(writer, *args, **kwargs)
    except ClientDisconnected:
        if writer.finished or writer.cancelled:
            return CANCELLED
        if writer.shutting_down:  # the producer chose to stop for it
            return INTERRUPTED
        logger.exception("run %s: producer %r failed", writer.run_id, producer)
        return ERROR
    except Exception:
        logger.exception("run %s: producer %r failed", writer.run_id, producer)
        return ERROR
    return CANCELLED if writer.cancelled else DONE
