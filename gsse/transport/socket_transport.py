"""SocketTransport: the gsse server's fast path, straight to the client socket.

Its :class:`~gsse.streams.Stream` appends to the stream's buffer, with no
greenlet switch, queue hop or lock; the buffer goes out in one non-blocking
``send`` once the writing greenlet yields (see :mod:`.cork`). What the
kernel does not take waits for a libev write watcher; a libev read watcher
notices a client that hangs up, and a half-close is probed with a
keep-alive.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import termios
import time
from collections.abc import Callable
from functools import partial
from socket import SO_ERROR
from socket import SOL_SOCKET
from socket import socket as RawSocket
from typing import TYPE_CHECKING
from typing import Any

import gevent

from ..exceptions import CloseReason
from .base import Transport
from .cork import Corks

if TYPE_CHECKING:
    from ..streams import Stream

#: The name docs/operations.md gives for stream ends, whichever module logs.
logger = logging.getLogger("gsse.transport")

#: After the client's end of file, the checks for the reset a client that
#: is gone answers the keep-alive with: the first PROBE_DELAY seconds later
#: (0: at the loop's next turn, once the keep-alive went out; on loopback
#: the reset is back by then), then every PROBE_INTERVAL seconds while the
#: client still reads.
PROBE_DELAY = 0.0
PROBE_INTERVAL = 0.25
_monotonic = time.monotonic
#: The corks of transports made without a host's (see :class:`Corks`).
_unowned_corks = Corks()


class SocketTransport(Transport):
    """Writes a stream's buffer straight to the client's socket.

    :param sock: the client's connection, already past the response headers;
        the transport owns it from now on and closes it.
    :param chunked: frame every write as an HTTP/1.1 chunk (``False`` for
        HTTP/1.0, whose body ends when the connection closes).
    :param corks: the corks of the host that serves the stream.
    """

    __slots__ = (
        "_raw",
        "_send",
        "_reader",
        "_writer",
        "_timer",
        "_cork",
        "_queued",
        "_probe",
    )

    def __init__(self, sock: Any, chunked: bool, corks: Corks | None = None) -> None:
        super().__init__(chunked)
        # The stdlib socket under gevent's wrapper is already non-blocking;
        # using it directly saves the wrapper's per-call overhead.
        raw: RawSocket = getattr(sock, "_sock", sock)
        self._raw = raw
        self._send = raw.send
        hub = gevent.get_hub()
        loop = hub.loop
        self._reader: Any = loop.io(raw.fileno(), 1)
        self._writer: Any = loop.io(raw.fileno(), 2)
        self._timer: Any = None
        self._cork = (corks if corks is not None else _unowned_corks).of(hub)
        #: Bytes in the kernel's send queue when last asked (-1: unknown).
        self._queued = -1
        #: Checks for a reset once the client has sent its end of file.
        self._probe: Any = None

    def attach(self, stream: Stream) -> Callable[[], object]:
        super().attach(stream)
        self._reader.start(self._on_readable)
        # Send at the loop's next turn, with whatever else is written to the
        # stream before then (the cork marks it corked); one call per wake.
        return partial(self._cork.add, self)

    def wake(self) -> None:
        self._cork.add(self)

    def uncork(self) -> None:
        self._uncork()

    def _uncork(self) -> None:
        """Send what the buffer holds now; leave the rest to the watcher."""
        stream = self.stream
        if not self.corked or self._reader is None or stream is None or stream.closed:
            return  # sent already, released, or finish() is flushing
        self.corked = False
        if self._flush(stream):
            self._writer.start(self._on_writable)
            stream._note_buffered()
        else:
            stream._note_drained()

    def finish(self) -> None:
        stream = self.stream
        assert stream is not None
        if stream.buffer and self._flush(stream):
            # Finish in the background; the send timeout still bounds it.
            stream.full_since = stream.full_since or _monotonic()
            self._writer.start(self._on_writable)
            self._timer = gevent.get_hub().loop.timer(stream.send_timeout or 1.0)
            self._timer.start(self.release)
            return
        self.release()

    def _flush(self, stream: Stream) -> bool:
        """Send what the kernel takes; ``True`` while bytes remain."""
        buffer = stream.buffer
        try:
            sent = self._send(buffer)
        except BlockingIOError:
            return True
        except OSError as exc:
            stream.abort(CloseReason.SEND_FAILED, exc.strerror or str(exc))
            return False
        del buffer[:sent]
        return bool(buffer)

    def kernel_sent(self) -> bool:
        try:
            reply = fcntl.ioctl(self._raw.fileno(), termios.TIOCOUTQ, b"\0" * 4)
        except (OSError, ValueError):
            return False  # not Linux-like, or the socket is gone
        queued: int = struct.unpack("i", reply)[0]
        before, self._queued = self._queued, queued
        return 0 <= queued < before

    def _on_writable(self) -> None:
        stream = self.stream
        if stream is None:
            return  # released meanwhile
        if self._flush(stream):
            stream._progressed()  # the client took bytes
            return
        if self._writer is None:
            return  # the send failed: the stream was aborted and released
        self._writer.stop()
        if stream.closed:
            self.release()
        else:
            stream._note_drained()

    def _on_readable(self) -> None:
        try:
            data = self._raw.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if self.stream is not None:
                self.stream.abort(CloseReason.CLIENT_GONE, exc.strerror or str(exc))
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
        stream = self.stream
        if stream is None:
            return  # released meanwhile
        logger.debug(
            "stream %d %s: the client closed its side; checking it still reads",
            stream.stream_id,
            stream.path,
            extra=stream.log_context,
        )
        if self._reader is not None:
            self._reader.stop()
        self._probe = gevent.get_hub().loop.timer(PROBE_DELAY, PROBE_INTERVAL)
        self._probe.start(self._check_gone)
        stream.ping_now()

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
        stream = self.stream
        if stream is None:
            return  # released meanwhile
        logger.debug(
            "stream %d %s: the client went away (%s)",
            stream.stream_id,
            stream.path,
            os.strerror(error),
            extra=stream.log_context,
        )
        stream.abort(CloseReason.CLIENT_GONE)

    def release(self) -> None:
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
        if self.stream is not None:
            self.stream.buffer = bytearray()
            # The stream keeps its transport; this side lets go, so a stream
            # that ended is freed at once, not by the cyclic GC.
            self.stream = None
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
