"""Following a run: the broker's replay, closed after the ``end`` event.

A follower is an ordinary broker subscription to the run's channel,
resumed from the client's ``Last-Event-ID`` or, without one, from the
run's origin (the marker published before its first event): the broker's
register-then-replay already guarantees every event once, with no gap.
The only addition is that the stream ends right after the ``end`` event,
which its subscription spots as it passes (:func:`~gsse.brokers.fanout.end_after`:
every published event starts with its ``event:`` line, and producers may
not send ``end``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent
from werkzeug.wrappers import Response

from ..brokers import Broker
from ..brokers.base import loop_of
from ..brokers.base import stream_of
from ..brokers.base import thread_ident
from ..brokers.fanout import end_after
from ..brokers.frames import parse_id
from ..exceptions import BrokerUnavailable
from ..stream import REQUEST_ENVIRON
from ..stream import StreamCallback
from ..stream import header_text
from ..streams import Stream
from ..writer import SSEWriter
from .store import channel_of
from .writer import END

if TYPE_CHECKING:
    from .runs import Runs

logger = logging.getLogger("gsse.runs.runs")

#: Seconds a follower waits for the id of an ``end`` being recorded.
END_ID_WAIT = 2.0


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
    watch: Callable[[Stream], None],
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
        stream = stream_of(writer)
        # A follower has nothing to finish: a shutdown ends it at once, and
        # its client resumes elsewhere from Last-Event-ID.
        writer._registry.end_at_shutdown(stream)
        watch(stream)
        last_event_id = resume_from(writer.last_event_id, origin)
        end_after(stream, END)
        broker._subscribe(
            SSEWriter(stream, writer._registry, last_event_id), (channel,)
        )

    follow.__qualname__ = f"Runs.follower({channel!r})"
    return follow


def request_last_event_id() -> str | None:
    """The ``Last-Event-ID`` of the request being handled, as the client meant it."""
    environ = REQUEST_ENVIRON.get() or {}
    return header_text(environ.get("HTTP_LAST_EVENT_ID"))


def answer_for(
    runs: Runs, run_id: str, last_event_id: str | None
) -> Response | StreamCallback:
    """:meth:`gsse.Runs.answer`: the follower's callback, or 404/204/503."""
    try:
        info = runs.get(run_id)
        if info is not None and info.finished and last_event_id:
            deadline = time.monotonic() + END_ID_WAIT
            while info is not None and info.end_id is None:
                if time.monotonic() > deadline:
                    break
                gevent.sleep(0.05)  # the end is being recorded right now
                info = runs._store.get(run_id)
    except BrokerUnavailable as exc:
        logger.warning("run %s: cannot look it up (%s); answering 503", run_id, exc)
        return unavailable()
    if info is None:
        return not_found()
    if info.finished and last_event_id and info.end_id == last_event_id:
        return no_content()
    return follower(runs.broker, channel_of(run_id), info.origin, runs._watch(run_id))


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
