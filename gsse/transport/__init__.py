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

from .base import OVERFLOW_FACTOR as OVERFLOW_FACTOR
from .base import CloseHook as CloseHook
from .base import Transport as Transport
from .cork import CORK_BYTES as CORK_BYTES
from .cork import Corks as Corks
from .queue_transport import QueueTransport as QueueTransport
from .socket_transport import PROBE_DELAY as PROBE_DELAY
from .socket_transport import PROBE_INTERVAL as PROBE_INTERVAL
from .socket_transport import SocketTransport as SocketTransport

__all__ = [
    "CORK_BYTES",
    "OVERFLOW_FACTOR",
    "PROBE_DELAY",
    "PROBE_INTERVAL",
    "CloseHook",
    "Corks",
    "QueueTransport",
    "SocketTransport",
    "Transport",
]
