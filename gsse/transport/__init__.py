"""Where a stream's encoded bytes go: straight to a socket, or to a host.

A transport is the I/O end of one :class:`~gsse.streams.Stream`, which owns
the buffer, the limits, the keep-alive and the stream's end (read
:mod:`gsse.streams` first). Two transports:

- :class:`SocketTransport` (the gsse server's fast path) owns the client
  socket once the headers are out. The buffer goes out in one non-blocking
  ``send`` on the real socket as soon as the writing greenlet yields to the
  loop (or once it holds ``CORK_BYTES``): every event a greenlet writes to
  a stream before it yields costs one system call, not one each. So a
  publisher that catches up a burst of events, or a keep-alive tick, costs
  one ``send`` per stream. What the kernel does not take stays in the
  bounded buffer, flushed by a libev write watcher. A libev read watcher
  notices a client that hangs up at once, even on an idle stream, without
  a greenlet waiting on it. So a stream needs no greenlet of its own
  unless user code is running. An end of file may only be a half-close
  (``shutdown(SHUT_WR)``, a client that still reads): the stream goes on,
  and a keep-alive sent at once tells a client that is really gone (it
  answers with a reset, seen at the loop's next turn or every
  ``PROBE_INTERVAL`` after, or the next write fails).
- :class:`QueueTransport` (any other WSGI host) hands the buffer to the
  host's response iterator, which the host writes with its own socket code.

Everything here runs in the event loop's thread; other threads reach it
through :mod:`gsse.bridge`.
"""

from __future__ import annotations

from .base import Transport as Transport
from .cork import CORK_BYTES as CORK_BYTES
from .cork import Corks as Corks
from .queue_transport import QueueTransport as QueueTransport
from .socket_transport import PROBE_DELAY as PROBE_DELAY
from .socket_transport import PROBE_INTERVAL as PROBE_INTERVAL
from .socket_transport import SocketTransport as SocketTransport

__all__ = [
    "CORK_BYTES",
    "PROBE_DELAY",
    "PROBE_INTERVAL",
    "Corks",
    "QueueTransport",
    "SocketTransport",
    "Transport",
]
