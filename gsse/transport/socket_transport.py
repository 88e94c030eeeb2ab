"""SocketTransport: the gsse server's fast path, straight to the client socket.

A write appends to the stream's buffer, with no greenlet switch, queue hop
or lock; the buffer goes out in one non-blocking ``send`` once the writing
greenlet yields (see :mod:`.cork`). What the kernel does not take waits
for a libev write watcher; a libev read watcher notices a client that
hangs up, and a half-close is probed with a keep-alive.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import termios
import time
from socket import SO_ERROR
from socket import SOL_SOCKET
from socket import socket as RawSocket
from typing import Any

import gevent

from ..chunked import LAST_CHUNK
from ..chunked import chunk
from ..exceptions import ClientDisconnected
from ..exceptions import CloseReason
from ..settings import ResolvedSettings
from ..stats import Stats
from ..wire import PING
from .base import Transport
from .cork import CORK_BYTES
from .cork import Corks

#: The name docs/operations.md gives for stream ends, whichever module logs.
logger = logging.getLogger("gsse.transport")

#: After the client's end of file: seconds until the first check for the
#: reset a client that is gone answers the keep-alive with, then between checks.
PROBE_DELAY = 0.25
PROBE_INTERVAL = 1.0
_monotonic = time.monotonic
#: The corks of transports made without a host's (see :class:`Corks`).
_unowned_corks = Corks()


class SocketTransport(Transport):
    """Writes straight to the client's socket (the gsse server's fast path).

    :param sock: the client's connection, already past the response headers;
        the transport owns it from now on and closes it.
    :param chunked: frame every write as an HTTP/1.1 chunk (``False`` for
        HTTP/1.0, whose body ends when the connection closes).
    :param corks: the corks of the host that serves the stream.
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

    def __init__(
        self,
        sock: Any,
        chunked: bool,
        settings: ResolvedSettings,
        corks: Corks | None = None,
        stats: Stats | None = None,
    ) -> None:
        super().__init__(settings, stats)
        # The stdlib socket under gevent's wrapper is already non-blocking;
        # using it directly saves the wrapper's per-call overhead.
        raw: RawSocket = getattr(sock, "_sock", sock)
        self._raw = raw
        self._send = raw.send
        self.chunked = chunked
        self._buffer = bytearray()
        hub = gevent.get_hub()
        loop = hub.loop
        self._reader = loop.io(raw.fileno(), 1)
        self._writer = loop.io(raw.fileno(), 2)
        self._timer: Any = None
        self._cork = (corks if corks is not None else _unowned_corks).of(hub)
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
            raise ClientDisconnected(f"stream closed: {self.close_text}")
        if self.chunked:
            data = framed if framed is not None else chunk(payload)
        else:
            data = payload
        self.wrote = True
        stats = self.stats
        stats.writes += 1
        stats.bytes += len(payload)
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

    def close(
        self, reason: CloseReason = CloseReason.CLOSED_BY_APP, detail: str = ""
    ) -> None:
        if self.closed:
            return
        if self.chunked:
            self.written += len(LAST_CHUNK)  # counted before the close hooks
        self._mark_closed(reason, detail)
        if self.chunked:
            self._buffer += LAST_CHUNK
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
            self.abort(CloseReason.SEND_FAILED, exc.strerror or str(exc))
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
            self.abort(CloseReason.CLIENT_GONE, exc.strerror or str(exc))
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
        self.abort(CloseReason.CLIENT_GONE)

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
