"""Runs: long jobs whose output survives a reload, a second tab, a restart.

``runs.start(producer)`` runs ``producer(run_writer)`` detached from any
request (a greenlet, or a pool thread); its events go to a broker channel
that keeps the whole run, and its metadata to the broker's backend, so any
process sharing the broker can follow it (:meth:`Runs.stream`,
``event.follow``), cancel it, or say it is unknown (``404``) or over
(``204``). See docs/runs.md for the design and its limits.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import gevent
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from ..bridge import call_in_greenlet
from ..brokers import Broker
from ..brokers.base import check_count
from ..exceptions import BrokerUnavailable
from ..exceptions import ClientDisconnected
from ..pool import pool_of
from ..registry import StreamRegistry
from ..registry import default_registry
from ..stream import REGISTRY_KEY
from ..stream import REQUEST_ENVIRON
from ..stream import StreamCallback
from ..stream import check_callback
from ..stream import header_text
from ..stream import stream as sse_stream
from ..transport import Transport
from .follow import follower
from .follow import no_content
from .follow import not_found
from .follow import unavailable
from .heartbeat import HEARTBEAT
from .heartbeat import Heartbeat
from .outbox import Outbox
from .run import Run
from .store import DONE
from .store import ERROR
from .store import INTERRUPTED
from .store import RUN_ID
from .store import RunInfo
from .store import RunStore
from .store import channel_of
from .store_memory import memory_store
from .writer import END
from .writer import START
from .writer import RunWriter
from .writer import produce

logger = logging.getLogger(__name__)

#: Seconds an owner's lease lasts: a dead owner's runs end this long after.
LEASE = 5.0
#: Default bounds of one run.
DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: How often, and how many seconds apart, a run's end is tried while Redis
#: is away (past that, its lease lapses and it ends as interrupted).
END_ATTEMPTS = 60
END_RETRY = 1.0
#: Seconds a follower waits for the id of an ``end`` being recorded.
END_ID_WAIT = 2.0
#: The history bound used to publish the ``end`` of a run another process
#: owned (its own bound is unknown here, and it was enforced when it ran).
_NO_TRIM = 2**31


class Runs:
    """Start, follow, cancel and look up runs kept in ``broker``.

    :param broker: from :meth:`gsse.Broker.from_url` (``memory://`` or
        ``redis://``): where runs' events and metadata live.
    :param ttl: seconds a finished run stays available; then ``404``.
    :param max_events: the most events one run may send.
    :param max_bytes: the most encoded bytes one run may send.
    :param lease: seconds after which a run whose process died is ended as
        ``interrupted`` (Redis; the owner renews it every half second).

    .. versionadded:: 0.3
    """

    def __init__(
        self,
        broker: Broker,
        ttl: float = 3600,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        lease: float = LEASE,
    ) -> None:
        if not isinstance(broker, Broker):
            raise TypeError(
                "Runs needs a gsse.Broker, e.g. gsse.Runs(gsse.Broker.from_url()),"
                f" not {type(broker).__name__}"
            )
        for name, value in (("ttl", ttl), ("lease", lease)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, got {value!r}")
            if not value > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {value!r}")
        if lease <= 2 * HEARTBEAT:
            raise ValueError(
                f"lease must be more than {2 * HEARTBEAT} s (two heartbeats),"
                f" got {lease!r}"
            )
        self.broker = broker
        self.ttl = float(ttl)
        self.max_events = check_count("max_events", max_events)
        self.max_bytes = check_count("max_bytes", max_bytes)
        self.lease = float(lease)
        self._store, self.shared = self._make_store()
        #: Runs this process owns and that still run.
        self._local: dict[str, RunWriter] = {}
        self._heartbeat = (
            Heartbeat(self._store, self._local, self._end_orphan)
            if self.shared
            else None
        )
        #: Redis: events leave in batches (see outbox.py).
        self._outbox = Outbox(broker) if self.shared else None

    def _make_store(self) -> tuple[RunStore, bool]:
        """The broker's run store, and whether other processes share it."""
        if getattr(self.broker, "_stream_key", None) is None:
            return memory_store(self.broker), False
        from .store_redis import RedisRunStore  # imports redis: only for redis://

        store = RedisRunStore(self.broker, self.ttl, self.lease)  # type: ignore[arg-type]
        return store, True

    def __repr__(self) -> str:
        return f"<Runs {self.broker!r} running_here={len(self._local)}>"

    # -- starting -----------------------------------------------------------
    def start(
        self,
        producer: Callable[..., Any],
        *args: Any,
        blocking: bool = False,
        **kwargs: Any,
    ) -> Run:
        """Start ``producer(run_writer, *args, **kwargs)``; return at once.

        The run goes on whether or not anyone follows it. Call it in the
        event loop (a handler, a greenlet), not from a pool thread.

        :param blocking: run the producer in a real OS thread of the thread
            pool, for code that blocks without yielding (an SDK, C code).
        :raises TypeError: ``producer`` is not callable, or is async.
        :raises gsse.BrokerUnavailable: the broker's backend is away.
        """
        check_callback(producer)
        run_id = secrets.token_urlsafe(16)
        channel = channel_of(run_id)
        # +2: the start marker and the end event are not the producer's.
        self.broker.keep_history(channel, self.max_events + 2)
        origin = self.broker.publish(channel, {"run": run_id}, event=START)
        self._store.create(run_id, origin, time.time())
        environ = REQUEST_ENVIRON.get()
        registry: StreamRegistry | None = (environ or {}).get(REGISTRY_KEY)
        if registry is None:  # not in a request of a gsse host
            registry = default_registry()
        writer = RunWriter(
            run_id,
            channel,
            self.broker,
            registry,
            self.max_events,
            self.max_bytes,
            send=self._outbox.put if self._outbox is not None else None,
        )
        self._local[run_id] = writer
        writer.transport.on_close(lambda _: self._finish(writer, INTERRUPTED))
        registry.add(writer.transport)
        if blocking:
            pool_of(environ).submit(
                self._produce_in_thread, writer, producer, args, kwargs, bounded=False
            )
        else:
            gevent.spawn(self._produce, writer, producer, args, kwargs)
        if self._heartbeat is not None:
            self._heartbeat.ensure()
        return Run(run_id, self)

    def _produce(
        self,
        writer: RunWriter,
        producer: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._finish(writer, self._outcome(writer, producer, args, kwargs))

    def _produce_in_thread(
        self,
        writer: RunWriter,
        producer: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        status = self._outcome(writer, producer, args, kwargs)
        try:
            call_in_greenlet(writer._hub, self._finish, writer, status)
        except ClientDisconnected:
            pass  # the loop stopped: the process is going away

    def _outcome(
        self,
        writer: RunWriter,
        producer: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> str:
        try:
            return produce(writer, producer, args, kwargs)
        except BaseException:
            # GreenletExit, KeyboardInterrupt: the run did not finish.
            writer._hub.loop.run_callback_threadsafe(
                gevent.spawn, self._finish, writer, INTERRUPTED
            )
            raise

    def _finish(self, writer: RunWriter, status: str) -> None:
        """Give the run its final status and send ``end`` (once, in the loop)."""
        if writer.finished:
            return
        writer.finished = True
        writer._cancel()  # a producer still going (shutdown) stops at its next send
        if writer.failed is not None and status == DONE:
            status = ERROR  # some of its events never reached the broker
        self._record_end(writer, status, won=False, attempt=1)

    def _record_end(
        self, writer: RunWriter, status: str, *, won: bool, attempt: int
    ) -> None:
        """Set the status, then publish ``end``; retried while Redis is away.

        The run stays among this process's runs meanwhile, so its lease is
        renewed and nobody else calls it interrupted.
        """
        run_id = writer.run_id
        try:
            won = won or self._store.finish(
                run_id, status, time.time(), writer.count, orphan=False
            )
            if won:
                if writer.end_id is None:  # not on a retry after ended() failed
                    writer.end_id = self._publish_end(run_id, status)
                self._store.ended(run_id, writer.end_id, self.ttl)
        except BrokerUnavailable as exc:
            if attempt < END_ATTEMPTS:
                if attempt == 1:
                    logger.warning(
                        "run %s: cannot record its end (%s) yet: %s; retrying",
                        run_id,
                        status,
                        exc,
                    )
                gevent.spawn_later(
                    END_RETRY, self._record_end, writer, status, won=won,
                    attempt=attempt + 1,
                )  # fmt: skip
                return
            logger.error(
                "run %s: gave up recording its end (%s): %s", run_id, status, exc
            )
        except Exception:
            logger.exception("run %s: could not record its end (%s)", run_id, status)
        self._local.pop(run_id, None)
        self.broker.keep_history(writer.channel, None)
        writer.transport.close()

    def _publish_end(self, run_id: str, status: str) -> str:
        """Publish the run's ``end`` event (after its own events); its id."""
        channel, data = channel_of(run_id), {"status": status}
        if status == INTERRUPTED:
            logger.warning("run %s ended as interrupted", run_id)
        if self._outbox is not None:  # after the run's own events, batched
            return self._outbox.publish(channel, data, END)
        return self.broker.publish(channel, data, event=END)

    # -- looking up, cancelling ----------------------------------------------
    def get(self, run_id: str) -> RunInfo | None:
        """The run's status, times and event count; ``None`` if unknown/expired."""
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            return None
        info = self._store.get(run_id)
        if info is None:
            return None
        local = self._local.get(run_id)
        if local is not None:
            return info._replace(events=local.count)
        if not info.finished and self.shared and self._store.orphans([run_id]):
            self._end_orphan(run_id)
            info = self._store.get(run_id)
        return info

    def cancel(self, run_id: str) -> bool:
        """Ask the run to stop; its producer sees it within a second.

        Works from any process sharing the broker. The run ends as
        ``cancelled`` once the producer returns.

        :returns: ``False`` if the run is unknown or already over.
        """
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            return False
        if not self._store.cancel(run_id):
            return False
        local = self._local.get(run_id)
        if local is not None:
            local._cancel()
        return True

    # -- following -----------------------------------------------------------
    def answer(
        self, run_id: str, last_event_id: str | None
    ) -> Response | StreamCallback:
        """What a follower of ``run_id`` gets: a stream callback, or a response.

        ``404`` (unknown or expired), ``204`` (``last_event_id`` is the
        ``end`` event's), ``503`` (the broker's backend is away; the client
        may retry), else the callback that streams the run.
        """
        try:
            info = self.get(run_id)
            if info is not None and info.finished and last_event_id:
                deadline = time.monotonic() + END_ID_WAIT
                while info is not None and info.end_id is None:
                    if time.monotonic() > deadline:
                        break
                    gevent.sleep(0.05)  # the end is being recorded right now
                    info = self._store.get(run_id)
        except BrokerUnavailable as exc:
            logger.warning("run %s: cannot look it up (%s); answering 503", run_id, exc)
            return unavailable()
        if info is None:
            return not_found()
        if info.finished and last_event_id and info.end_id == last_event_id:
            return no_content()
        return follower(
            self.broker, channel_of(run_id), info.origin, self._watch(run_id)
        )

    def stream(
        self,
        run_id: str,
        *,
        headers: Mapping[str, str] | Headers | None = None,
        retry: int | None = None,
        ping: float | None = None,
        send_timeout: float | None = None,
    ) -> Response:
        """A response that follows the run; return it from any WSGI view.

        Everything from the start (or after ``Last-Event-ID``), then live
        events, then ``event: end``; ``404`` for an unknown or expired run,
        ``204`` for a client that already has the ``end``.
        """
        environ = REQUEST_ENVIRON.get() or {}
        last_event_id = header_text(environ.get("HTTP_LAST_EVENT_ID"))
        answer = self.answer(run_id, last_event_id)
        if isinstance(answer, Response):
            return answer
        return sse_stream(
            answer,
            headers=headers,
            retry=retry,
            ping=ping,
            send_timeout=send_timeout,
        )

    def _watch(self, run_id: str) -> Callable[[Transport], None]:
        """What a follower of ``run_id`` tells, to notice a dead owner (Redis)."""
        heartbeat = self._heartbeat
        if heartbeat is None:
            return lambda transport: None
        return lambda transport: heartbeat.watch(run_id, transport)

    def _end_orphan(self, run_id: str) -> None:
        """End a run whose owner died, if no other process did it first."""
        if self._store.finish(run_id, INTERRUPTED, time.time(), 0, orphan=True):
            channel = channel_of(run_id)
            self.broker.keep_history(channel, _NO_TRIM)
            try:
                end_id = self._publish_end(run_id, INTERRUPTED)
                self._store.ended(run_id, end_id, self.ttl)
            finally:
                self.broker.keep_history(channel, None)
