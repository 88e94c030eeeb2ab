"""Runs' events to Redis in batches: one round trip for every token ready.

A producer's ``send_event`` on a shared (Redis) broker queues the event
here and returns; one greenlet publishes what is queued with
:meth:`~gsse.Broker.publish_many` (a pipeline, in order), then what was
queued meanwhile. A thousand runs sending a token each cost one round trip
instead of a thousand waits for a pool of four connections. Order within a
run is kept (batches are sent one after another, each in order); a queue
over :data:`MAX_PENDING` makes producers wait (backpressure); a batch that
Redis refused for ``publish_timeout`` marks its runs' writers, whose next
send raises the error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.event import Event as GeventEvent

from ..brokers import Broker
from ..exceptions import BrokerUnavailable

if TYPE_CHECKING:
    from .writer import RunWriter

logger = logging.getLogger(__name__)

#: Queued events past which a producer waits for the queue to drain.
MAX_PENDING = 20_000
#: The longest a producer or a run's end waits for the queue (seconds).
DRAIN_TIMEOUT = 60.0


class Outbox:
    """The queue and the one greenlet that publishes it (per :class:`gsse.Runs`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._pending: list[tuple[str, Any, str | None, RunWriter | AsyncResult]] = []
        self._flusher: gevent.Greenlet | None = None
        self._idle = GeventEvent()
        self._idle.set()

    def put(
        self, writer: RunWriter, channel: str, data: Any, event: str | None
    ) -> None:
        """Queue one event (in the event loop); wait only if far behind."""
        self._pending.append((channel, data, event, writer))
        if self._flusher is None:
            self._idle.clear()
            self._flusher = gevent.spawn(self._flush)
        if len(self._pending) > MAX_PENDING:
            self.drain()

    def publish(self, channel: str, data: Any, event: str | None) -> str:
        """Publish one event after everything queued; wait for its id.

        For a run's ``end``: it follows the run's own events, and the ends
        of many runs finishing together share round trips too.
        """
        result: AsyncResult = AsyncResult()
        self._pending.append((channel, data, event, result))
        if self._flusher is None:
            self._idle.clear()
            self._flusher = gevent.spawn(self._flush)
        try:
            event_id: str = result.get(timeout=DRAIN_TIMEOUT)
        except gevent.Timeout:
            raise BrokerUnavailable(
                f"the event to channel {channel!r} was not published within"
                f" {DRAIN_TIMEOUT:g} s (the broker is far behind)"
            ) from None
        return event_id

    def drain(self) -> None:
        """Wait until everything queued so far is published (or failed)."""
        if self._flusher is not None and self._flusher is not gevent.getcurrent():
            self._idle.wait(DRAIN_TIMEOUT)

    def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    ids = self._broker.publish_many([item[:3] for item in batch])
                except Exception as exc:  # BrokerUnavailable, or a bug
                    logger.error(
                        "runs: %d event(s) were not published: %s", len(batch), exc
                    )
                    for item in batch:
                        owner = item[3]
                        if isinstance(owner, AsyncResult):
                            owner.set_exception(exc)
                        else:
                            owner.failed = exc
                    continue
                for item, event_id in zip(batch, ids, strict=True):
                    if isinstance(item[3], AsyncResult):
                        item[3].set(event_id)
        finally:
            self._flusher = None
            self._idle.set()
