"""Following a run: the broker's replay, closed after the ``end`` event.

A follower is an ordinary broker subscription to the run's channel,
resumed from the client's ``Last-Event-ID`` or, without one, from the
run's origin (the marker published before its first event): the broker's
register-then-replay already guarantees every event once, with no gap.
The only addition is that the stream ends right after the ``end`` event,
which :class:`_EndWatch` spots as it passes (every published event starts
with its ``event:`` line, and producers may not send ``end``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import cast

import gevent
from werkzeug.wrappers import Response

from ..brokers import Broker
from ..brokers.base import loop_of
from ..brokers.base import thread_ident
from ..brokers.base import transport_of
from ..brokers.frames import parse_id
from ..exceptions import CloseReason
from ..stream import StreamCallback
from ..transport import Transport
from ..writer import SSEWriter
from .writer import END

_END_LINE = f"event: {END}\n".encode()


class _EndWatch:
    """The follower's transport, as the subscription sees it: ends after ``end``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Transport) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, payload: bytes, framed: bytes | None = None) -> None:
        inner = self._inner
        inner.write(payload, framed)
        if payload.startswith(_END_LINE):
            inner.close(CloseReason.CLOSED_BY_APP)


def resume_from(last_event_id: str | None, origin: str) -> str:
    """Where a follower resumes: its ``Last-Event-ID`` if from this run, else origin.

    A missing header, or an id older than the run (another run's, a stale
    tab's), means "from the start", which is what a follower wants.
    """
    start = parse_id(origin)
    if last_event_id:
        key = parse_id(last_event_id)
        if key is not None and start is not None and key >= start:
            return last_event_id
    return origin


def follower(
    broker: Broker,
    channel: str,
    origin: str,
    watch: Callable[[Transport], None],
) -> StreamCallback:
    """The stream callback that follows a run's channel to its ``end``.

    :param watch: told of the follower's stream (to notice an owner that
        died, see :class:`gsse.Runs`).
    """

    def follow(writer: SSEWriter) -> None:
        hub, loop_thread = loop_of(writer)
        if thread_ident() != loop_thread:
            hub.loop.run_callback_threadsafe(gevent.spawn, _follow, writer)
            return
        _follow(writer)

    def _follow(writer: SSEWriter) -> None:
        transport = transport_of(writer)
        # A follower has nothing to finish: a shutdown ends it at once, and
        # its client resumes elsewhere from Last-Event-ID.
        writer._registry.end_at_shutdown(transport)
        watch(transport)
        last_event_id = resume_from(writer.last_event_id, origin)
        watched = cast(Transport, _EndWatch(transport))
        broker._subscribe(
            SSEWriter(watched, writer._registry, last_event_id), (channel,)
        )

    follow.__qualname__ = f"Runs.follower({channel!r})"
    return follow


def not_found() -> Response:
    """``404``: the run id is unknown, or the run expired."""
    return Response("unknown or expired run\n", status=404, mimetype="text/plain")


def no_content() -> Response:
    """``204``: the client has the run's ``end`` already; EventSource stops."""
    return Response(status=204)


def unavailable() -> Response:
    """``503``: the broker's backend (Redis) did not answer; retry soon."""
    return Response(
        "the run store is unavailable, retry shortly\n",
        status=503,
        mimetype="text/plain",
        headers={"Retry-After": "2"},
    )
