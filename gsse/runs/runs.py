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
from ..host import Host
from ..host import view_of
from ..stream import REQUEST_ENVIRON
from ..stream import StreamCallback
from ..stream import check_callback
from ..stream import stream as sse_stream
from ..streams import Stream
from .checks import check_arguments
from .follow import answer_for
from .follow import request_last_event_id
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
    :param host: the :class:`gsse.host.Host` of runs started outside a
        request (a script, a greenlet of your own): its graceful shutdown
        waits for them. ``None``: this object makes one when first needed,
        and :meth:`shutdown` ends it. A run started in a request belongs to
        the request's host (the server's), whatever this says.

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
        host: Host | None = None,
    ) -> None:
        check_arguments(broker, ttl, lease, host)
        self.broker = broker
        self.ttl = float(ttl)
        self._host = host
        #: Whether :attr:`_host` was made here (then :meth:`shutdown` ends it).
        self._own_host = False
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
        host = self._host_of_run()
        writer = RunWriter(
            run_id,
            channel,
            self.broker,
            host,
            self.max_events,
            self.max_bytes,
            send=self._outbox.put if self._outbox is not None else None,
        )
        self._local[run_id] = writer
        writer.stream.on_close(lambda _: self._finish(writer, INTERRUPTED))
        host.registry.add(writer.stream)
        if blocking:
            host.pool.submit(
                self._produce_in_thread, writer, producer, args, kwargs, bounded=False
            )
        else:
            gevent.spawn(self._produce, writer, producer, args, kwargs)
        if self._heartbeat is not None:
            self._heartbeat.ensure()
        return Run(run_id, self)

    def _host_of_run(self) -> Host:
        """The host a run started now belongs to: the request's, else ours."""
        view = view_of(REQUEST_ENVIRON.get())
        if view is not None and view.host is not None:
            return view.host
        if self._host is None:
            # No process-wide default host (see gsse.host): this one is ours.
            self._host, self._own_host = Host(owner=self), True
        return self._host

    def shutdown(self, graceful_timeout: float | None = None) -> int:
        """Shut down the host this object made (see ``host``); how many were cut.

        As a server does: ``shutting_down`` turns ``True``, runs get
        ``graceful_timeout`` seconds (default 10), the rest end
        ``interrupted``. A ``host=`` given, and requests' hosts, are left
        to their owners.
        """
        if not self._own_host or self._host is None:
            return 0
        return self._host.shutdown(graceful_timeout)

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
        writer.stream.close()

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
        return answer_for(self, run_id, last_event_id)

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
        answer = self.answer(run_id, request_last_event_id())
        if isinstance(answer, Response):
            return answer
        return sse_stream(
            answer,
            headers=headers,
            retry=retry,
            ping=ping,
            send_timeout=send_timeout,
        )

    def _watch(self, run_id: str) -> Callable[[Stream], None]:
        """What a follower of ``run_id`` tells, to notice a dead owner (Redis)."""
        heartbeat = self._heartbeat
        if heartbeat is None:
            return lambda stream: None
        return lambda stream: heartbeat.watch(run_id, stream)

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
