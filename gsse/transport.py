"""Where a stream's encoded bytes go: straight to a socket, or to a host.

Two transports share one small interface (``write``, ``full``,
``wait_drained``, ``close``, ``abort``, ``closed``):

- :class:`SocketTransport` (the gsse server's fast path) owns the client
  socket once the headers are out. A write appends to the stream's buffer,
  with no greenlet switch, queue hop or lock, and the buffer goes out in
  one non-blocking ``send`` on the real socket as soon as the writing
  greenlet yields to the loop (or once it holds ``CORK_BYTES``): every
  event a greenlet writes to a stream before it yields costs one system
  call, not one each. So a publisher that catches up a burst of events, or
  a keep-alive tick, costs one ``send`` per stream. What the kernel does not
  take stays in the bounded buffer, flushed by a libev write watcher. A
  libev read watcher notices a client that hangs up at once, even on an
  idle stream, without a greenlet waiting on it. So a stream needs no
  greenlet of its own unless user code is running. An end of file may
  only be a half-close (``shutdown(SHUT_WR)``, a client that still
  reads): the stream goes on, and a keep-alive sent at once tells a client
  that is really gone (it answers with a reset, seen ``PROBE_DELAY`` later,
  or the next write fails).
- :class:`QueueTransport` (any other WSGI host) queues bytes for the host's
  response iterator, which the host writes with its own socket code.

Both enforce the same limits: a writer waits while more than
``buffer_size`` bytes are unsent, and a stream whose buffer stays full with
no byte taken by the client for ``send_timeout`` seconds is aborted (the
client can resume by replay): a slow client that keeps reading is never
timed out. Producers that never wait (channel subscribers) are aborted at
once past ``OVERFLOW_FACTOR * buffer_size`` plus the largest single write
still buffered, so one event larger than the buffer never drops a client
that is reading it.

Everything here runs in the event loop's thread; other threads reach it
through :mod:`gsse.bridge`.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import struct
import termios
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from socket import SO_ERROR
from socket import SOL_SOCKET
from socket import socket as RawSocket
from typing import Any

import gevent
from gevent.event import Event as GeventEvent

from .exceptions import ClientDisconnected
from .metrics import STATS
from .settings import ResolvedSettings
from .wire import PING
from .wire import chunk

logger = logging.getLogger(__name__)

#: A non-waiting producer may overshoot ``buffer_size`` this many times over.
OVERFLOW_FACTOR = 16

#: A stream's writes are sent at once, not at the next yield, past this size.
CORK_BYTES = 16 * 1024

_CHUNKED_END = b"0\r\n\r\n"
#: After the client's end of file: seconds until the first check for the
#: reset a client that is gone answers the keep-alive with, then between checks.
PROBE_DELAY = 0.25
PROBE_INTERVAL = 1.0
_monotonic = time.monotonic
_stream_ids = itertools.count(1)

CloseHook = Callable[["Transport"], None]


class Transport:
    """What both transports share: state, limits, keep-alive, close hooks."""

    __slots__ = (
        "closed",
        "close_reason",
        "ping",
        "send_timeout",
        "buffer_size",
        "wrote",
        "ping_at",
        "full_since",
        "largest",
        "_hooks",
        "_drained",
        "stream_id",
        "path",
        "posted",
        "applied",
        "dropped",
        "written",
        "__weakref__",
    )

    def __init__(self, settings: ResolvedSettings) -> None:
        self.closed = False
        self.close_reason = ""
        self.ping = settings.ping
        self.send_timeout = settings.send_timeout
        self.buffer_size = settings.buffer_size
        #: Set by every write; the keep-alive tick clears it.
        self.wrote = False
        #: The first keep-alive is due one full interval after the stream opens.
        self.ping_at = _monotonic() + self.ping
        #: When the buffer went over ``buffer_size``, or the client last took
        #: bytes while it stayed over (0.0: it is not over).
        self.full_since = 0.0
        #: The largest write since the buffer was last within ``buffer_size``.
        self.largest = 0
        self._hooks: list[CloseHook] = []
        self._drained: GeventEvent | None = None
        #: For log records and metrics: a process-unique number, the path.
        self.stream_id = next(_stream_ids)
        self.path = ""
        #: Bytes pool threads posted to the loop, and bytes the loop has
        #: taken (each written by one side only); the difference is in flight.
        self.posted = 0
        self.applied = 0
        #: A write posted from a thread found the stream closed.
        self.dropped = False
        #: Bytes this stream wrote to its connection (framing included).
        self.written = 0
        STATS.streams_opened += 1

    @property
    def log_context(self) -> dict[str, object]:
        """``extra=`` for log records about this stream."""
        return {"stream_id": self.stream_id, "path": self.path}

    # -- what subclasses provide -------------------------------------------
    @property
    def pending(self) -> int:
        """Bytes accepted but not yet handed to the socket or host."""
        raise NotImplementedError

    def write(self, payload: bytes, framed: bytes | None = None) -> None:
        """Queue or send ``payload`` without blocking.

        :param framed: ``payload`` already framed as an HTTP chunk, when the
            caller shares one framing among many streams (broadcast).
        :raises ClientDisconnected: the stream has ended.
        """
        raise NotImplementedError

    def close(self) -> None:
        """End the stream cleanly: flush what is buffered, then the end."""
        raise NotImplementedError

    def _release(self) -> None:
        """Drop OS resources at once (socket, watchers)."""
        raise NotImplementedError

    # -- shared behaviour ---------------------------------------------------
    @property
    def full(self) -> bool:
        return self.pending > self.buffer_size

    def on_close(self, hook: CloseHook) -> None:
        """Call ``hook(transport)`` once when the stream ends, for any reason."""
        if self.closed:
            hook(self)
        else:
            self._hooks.append(hook)

    def abort(self, reason: str) -> None:
        """End the stream now, dropping anything unsent."""
        if not self.closed:
            self._mark_closed(reason)
        self._release()

    def wait_drained(self) -> None:
        """Block this greenlet while the buffer is full (backpressure).

        :raises ClientDisconnected: the stream ended, or stayed full for
            ``send_timeout`` seconds (then it is aborted).
        """
        while self.full and not self.closed:
            waited = _monotonic() - self.full_since
            remaining = self.send_timeout - waited
            if self.send_timeout and remaining <= 0:
                if self._kernel_sent():
                    continue
                self._send_timed_out()
                break
            if self._drained is None:
                self._drained = GeventEvent()
            self._drained.clear()
            self._drained.wait(remaining if self.send_timeout else None)
        if self.closed:
            raise ClientDisconnected(f"stream closed: {self.close_reason}")

    def tick(self, now: float) -> None:
        """Periodic duties: send-timeout enforcement and keep-alive pings."""
        if self.full_since and self.send_timeout:
            if now - self.full_since > self.send_timeout and not self._kernel_sent():
                self._send_timed_out()
            return
        if self.ping <= 0:
            return
        if self.wrote:
            self.wrote = False
            self.ping_at = now + self.ping
        elif now >= self.ping_at:
            try:
                self.write(PING)
                STATS.pings += 1
            except ClientDisconnected:
                pass

    def _send_timed_out(self) -> None:
        logger.info(
            "stream %d %s: closing, its client read nothing for %.1f s"
            " (%d bytes unsent)",
            self.stream_id,
            self.path,
            self.send_timeout,
            self.pending,
            extra=self.log_context,
        )
        self.abort("send timeout: the client stopped reading")

    def _note_buffered(self) -> None:
        """Book-keeping after bytes were left in the buffer."""
        if not self.full_since and self.pending > self.buffer_size:
            self.full_since = _monotonic()
            self._kernel_sent()

    def _kernel_sent(self) -> bool:
        """Whether the client took bytes the kernel held since last asked.

        The kernel's send buffer (megabytes on loopback) may hide a client
        that reads slowly but steadily: the socket turns writable only once
        much of it has gone. If so, this counts as progress now.
        """
        return False

    def abort_if_overflowed(self) -> bool:
        """For producers that never wait (channel fan-out): drop a lagging client."""
        if self.pending <= OVERFLOW_FACTOR * self.buffer_size + self.largest:
            return False
        logger.info(
            "stream %d %s: closing, its client reads too slowly (%d bytes unsent)",
            self.stream_id,
            self.path,
            self.pending,
            extra=self.log_context,
        )
        self.abort("buffer overflow: the client reads too slowly")
        return True

    def _note_drained(self) -> None:
        """Book-keeping after the buffer shrank."""
        if self.pending > self.buffer_size:
            return
        self.largest = 0
        if self.full_since:
            self.full_since = 0.0
            if self._drained is not None:
                self._drained.set()

    def _mark_closed(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason
        STATS.stream_closed(reason)
        if self._drained is not None:
            self._drained.set()
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                logger.exception(
                    "stream %d %s: a close hook failed",
                    self.stream_id,
                    self.path,
                    extra=self.log_context,
                )


class _Cork:
    """The streams of one event loop written since the loop last ran.

    One loop callback per batch (not per stream) sends each buffer once.
    """

    __slots__ = ("streams", "loop", "scheduled")

    def __init__(self, loop: Any) -> None:
        self.streams: list[SocketTransport] = []
        self.loop = loop
        self.scheduled = False

    def add(self, transport: SocketTransport) -> None:
        self.streams.append(transport)
        if not self.scheduled:
            self.scheduled = True
            self.loop.run_callback(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        streams, self.streams = self.streams, []
        for transport in streams:
            transport._uncork()


_corks: dict[int, _Cork] = {}


def _cork_of(loop: Any) -> _Cork:
    cork = _corks.get(id(loop))
    if cork is None or cork.loop is not loop:
        cork = _corks[id(loop)] = _Cork(loop)
    return cork


class SocketTransport(Transport):
    """Writes straight to the client's socket (the gsse server's fast path).

    :param sock: the client's connection, already past the response headers;
        the transport owns it from now on and closes it.
    :param chunked: frame every write as an HTTP/1.1 chunk (``False`` for
        HTTP/1.0, whose body ends when the connection closes).
    """

    __slots__ = (
        "_raw",
        "_send",
        "chunked",
        "_buffer",
        "_reader",
        "_writer",
        "_timer",
        "_cork",
        "_corked",
        "_queued",
        "_probe",
    )

    def __init__(self, sock: Any, chunked: bool, settings: ResolvedSettings) -> None:
        super().__init__(settings)
        # The stdlib socket under gevent's wrapper is already non-blocking;
        # using it directly saves the wrapper's per-call overhead.
        raw: RawSocket = getattr(sock, "_sock", sock)
        self._raw = raw
        self._send = raw.send
        self.chunked = chunked
        self._buffer = bytearray()
        loop = gevent.get_hub().loop
        self._reader = loop.io(raw.fileno(), 1)
        self._writer = loop.io(raw.fileno(), 2)
        self._timer: Any = None
        self._cork = _cork_of(loop)
        #: Waiting for the cork's flush (the buffer then holds unsent writes).
        self._corked = False
        #: Bytes in the kernel's send queue when last asked (-1: unknown).
        self._queued = -1
        #: Checks for a reset once the client has sent its end of file.
        self._probe: Any = None
        self._reader.start(self._on_readable)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def write(self, payload: bytes, framed: bytes | None = None) -> None:
        if self.closed:
            raise ClientDisconnected(f"stream closed: {self.close_reason}")
        if self.chunked:
            data = framed if framed is not None else chunk(payload)
        else:
            data = payload
        self.wrote = True
        STATS.writes += 1
        STATS.bytes += len(payload)
        buffer = self._buffer
        if not buffer:
            # Nothing waits to be sent: send at the loop's next turn, with
            # whatever else this greenlet writes to the stream before then.
            self._corked = True
            self._cork.add(self)
        buffer += data
        if len(data) > self.largest:
            self.largest = len(data)
        self.written += len(data)
        if self._corked and len(buffer) > CORK_BYTES:
            self._uncork()
        elif len(buffer) > self.buffer_size:
            self._note_buffered()

    def _uncork(self) -> None:
        """Send what the buffer holds now; leave the rest to the watcher."""
        if not self._corked or self._reader is None or self.closed:
            return  # sent already, released, or close() is flushing
        self._corked = False
        if self._flush():
            self._writer.start(self._on_writable)
            self._note_buffered()
        else:
            self._note_drained()

    def close(self) -> None:
        if self.closed:
            return
        if self.chunked:
            self.written += len(_CHUNKED_END)  # counted before the close hooks
        self._mark_closed("closed by the server")
        if self.chunked:
            self._buffer += _CHUNKED_END
        if self._buffer and self._flush():
            # Finish in the background; the send timeout still bounds it.
            self.full_since = self.full_since or _monotonic()
            self._writer.start(self._on_writable)
            self._timer = gevent.get_hub().loop.timer(self.send_timeout or 1.0)
            self._timer.start(self._release)
            return
        self._release()

    def _flush(self) -> bool:
        """Send what the kernel takes; ``True`` while bytes remain."""
        try:
            sent = self._send(self._buffer)
        except BlockingIOError:
            return True
        except OSError as exc:
            self.abort(f"send failed: {exc.strerror or exc}")
            return False
        del self._buffer[:sent]
        return bool(self._buffer)

    def _kernel_sent(self) -> bool:
        try:
            reply = fcntl.ioctl(self._raw.fileno(), termios.TIOCOUTQ, b"\0" * 4)
        except (OSError, ValueError):
            return False  # not Linux-like, or the socket is gone
        queued = struct.unpack("i", reply)[0]
        before, self._queued = self._queued, queued
        if 0 <= queued < before:
            self.full_since = _monotonic()
            return True
        return False

    def _on_writable(self) -> None:
        if self._flush():
            if self.full_since:
                self.full_since = _monotonic()  # the client took bytes: progress
                self._kernel_sent()
            return
        self._writer.stop()
        if self.closed:
            self._release()
        else:
            self._note_drained()

    def _on_readable(self) -> None:
        try:
            data = self._raw.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self.abort(f"client connection failed: {exc.strerror or exc}")
            return
        if not data:
            self._on_eof()
        # Anything else a client sends while it streams is ignored.

    def _on_eof(self) -> None:
        """The client sent its end of file: gone, or half-closed and reading.

        Keep streaming: stop watching reads (an end of file stays readable)
        and send a keep-alive now. A client that is gone answers it (or any
        later write) with a reset, which :meth:`_check_gone` finds on a
        timer; a write after the reset fails and aborts the stream as well.
        """
        logger.debug(
            "stream %d %s: the client closed its side; checking it still reads",
            self.stream_id,
            self.path,
            extra=self.log_context,
        )
        if self._reader is not None:
            self._reader.stop()
        self._probe = gevent.get_hub().loop.timer(PROBE_DELAY, PROBE_INTERVAL)
        self._probe.start(self._check_gone)
        try:
            self.write(PING)
        except ClientDisconnected:
            pass

    def _check_gone(self) -> None:
        """Has the half-closed client answered a write with a reset?"""
        # recv() reports the end of file, not the reset that came after it;
        # the socket's pending error does (EPIPE or ECONNRESET).
        try:
            error = self._raw.getsockopt(SOL_SOCKET, SO_ERROR)
        except OSError as exc:
            error = exc.errno or errno.EBADF
        if not error:
            return
        logger.debug(
            "stream %d %s: the client went away (%s)",
            self.stream_id,
            self.path,
            os.strerror(error),
            extra=self.log_context,
        )
        self.abort("the client went away")

    def _release(self) -> None:
        if self._reader is None:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._reader.stop()
        self._writer.stop()
        self._reader.close()
        self._writer.close()
        self._reader = self._writer = None
        self._buffer = bytearray()
        raw = self._raw
        try:
            # Read what the client sent so closing does not turn into a reset.
            raw.recv(16384)
        except OSError:
            pass
        try:
            raw.close()
        except OSError as exc:
            if exc.errno != errno.EBADF:
                logger.debug("closing a stream socket failed: %s", exc)


class QueueTransport(Transport):
    """Queues bytes for a WSGI host's response iterator (any gevent host).

    The host pulls with :meth:`drain`, which yields everything queued as one
    chunk (so a burst becomes one socket write) and ends when the stream is
    closed. The host does the HTTP framing.
    """

    __slots__ = ("_queue", "_size", "_ready", "_consumer")

    def __init__(self, settings: ResolvedSettings) -> None:
        super().__init__(settings)
        self._queue: deque[bytes] = deque()
        self._size = 0
        self._ready = GeventEvent()
        self._consumer: gevent.Greenlet | None = None

    @property
    def pending(self) -> int:
        return self._size

    def write(self, payload: bytes, framed: bytes | None = None) -> None:
        if self.closed:
            raise ClientDisconnected(f"stream closed: {self.close_reason}")
        self.wrote = True
        STATS.writes += 1
        STATS.bytes += len(payload)
        self._queue.append(payload)
        self._size += len(payload)
        if len(payload) > self.largest:
            self.largest = len(payload)
        self._ready.set()
        if self._size > self.buffer_size:
            self._note_buffered()

    def close(self) -> None:
        if not self.closed:
            self._mark_closed("closed by the server")
            self._ready.set()

    def drain(self) -> Iterator[bytes]:
        """Yield queued bytes until the stream is closed (run by the host)."""
        self._consumer = gevent.getcurrent()
        queue = self._queue
        while True:
            if queue:
                data = b"".join(queue)
                queue.clear()
                self._size = 0
                self._note_drained()
                step = self.buffer_size
                if len(data) <= step:
                    yield data
                    continue
                # In pieces, so each piece the host sends counts as progress.
                for start in range(0, len(data), step):
                    yield data[start : start + step]
                    if self.full_since:
                        self.full_since = _monotonic()
            elif self.closed:
                return
            else:
                self._ready.clear()
                self._ready.wait()

    def _release(self) -> None:
        self._queue.clear()
        self._size = 0
        self._ready.set()

    def _send_timed_out(self) -> None:
        super()._send_timed_out()
        # The host is stuck writing to a client that reads nothing; end its
        # greenlet so the host closes the connection.
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer is not gevent.getcurrent():
            consumer.kill(block=False)
