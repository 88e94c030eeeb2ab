"""``handlers="threads"``: ordinary WSGI handlers run in pool threads.

For apps whose request handlers block in ways gevent cannot make
cooperative (C database drivers, CPU work, libraries that keep their own
sockets): each request's ``app(environ, start_response)`` call, and the
iteration of its body, run in a real OS thread of the server's
:class:`~gsse.pool.BlockingPool`, so the event loop stays free for
streams, keep-alives and other requests.

Deliberate choices:

- Sockets belong to the loop's thread, so the request body is read lazily:
  each ``wsgi.input`` read of the handler is handed to a greenlet of the
  loop and waited for (:class:`LoopInput`). Memory stays bounded by what
  the handler asks for; a body nobody reads (a ``404``) is never held
  whole (a 300 MiB body used to cost 300 MiB). ``start_response``'s
  ``write()`` is handed back to the loop the same way.
- The queue is bounded: when it is full the request gets ``503`` with
  ``Retry-After`` before the handler starts; a request whose client hung
  up while it waited for a thread is skipped (logged as ``499``, nginx's
  "client closed request"; the client never sees it).
- A handler that returns a stream (``event.start_sse()``, ``gsse.stream``)
  hands its response back to the loop: the stream is served on the fast
  path and its callback runs as a greenlet, or in the pool with
  ``blocking=True``, exactly as in the default mode.
- A body that is a list or tuple is already in memory and is sent from the
  loop; any other iterable is advanced in the pool, one chunk at a time.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

import gevent
from gevent.monkey import get_original

from .body import LineReader
from .bridge import call_in_greenlet
from .pool import BUSY_BODY
from .pool import BlockingPool
from .pool import ClientGone
from .pool import PoolFull
from .stream import SSEBody

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

_DONE = object()
_thread_ident = get_original("_thread", "get_ident")
_poll = get_original("select", "poll")

#: The environ key of the request's connection socket (set by the server).
CONNECTION_KEY = "gsse.connection"
#: What a request skipped because its client left is logged with.
STATUS_CLIENT_GONE = "499 Client Closed Request"


def connection_open(sock: Any) -> bool:
    """Whether the client of ``sock`` is still there, without reading.

    A client that closed (end of file or a reset) is gone. A client that
    only shut down its sending side counts as gone too: HTTP clients do not
    do that while they wait for an answer.
    """
    try:
        fd = sock.fileno()
        if fd < 0:
            return False
        poller = _poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(0):
            return True  # nothing to read: connected and quiet
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (OSError, ValueError):
        return False


class LoopInput(LineReader):
    """``wsgi.input`` for a pool thread: every read runs in the loop.

    Reads go to the host's own input (with its length and limit checks)
    in a greenlet of the loop's thread, which owns the socket; the thread
    waits for each. Called from the loop's thread, it reads directly.
    """

    def __init__(self, wrapped: Any, hub: Any, loop_thread: int) -> None:
        self._wrapped = wrapped
        self._hub = hub
        self._loop_thread = loop_thread

    def _call(self, name: str, *args: Any) -> Any:
        method = getattr(self._wrapped, name)
        if _thread_ident() == self._loop_thread:
            return method(*args)
        return call_in_greenlet(self._hub, method, *args)

    def read(self, size: int | None = -1) -> bytes:
        return self._call("read", -1 if size is None else size)  # type: ignore[no-any-return]

    def readline(self, size: int | None = -1) -> bytes:
        return self._call("readline", -1 if size is None else size)  # type: ignore[no-any-return]


class ThreadedHandlers:
    """Wraps a WSGI app so that its handlers run in ``pool``'s threads."""

    def __init__(self, app: WSGIApplication, pool: BlockingPool) -> None:
        self.app = app
        self.pool = pool

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        hub = gevent.get_hub()
        environ["wsgi.input"] = LoopInput(environ["wsgi.input"], hub, _thread_ident())
        connection = environ.get(CONNECTION_KEY)

        def alive() -> bool:
            return connection is None or connection_open(connection)

        def start_from_thread(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            # pywsgi's start_response only records the status and headers
            # (the loop's greenlet is parked meanwhile); its write() does I/O.
            write = start_response(status, headers, exc_info)
            return lambda data: call_in_greenlet(hub, write, data)

        try:
            result = self.pool.apply(self.app, environ, start_from_thread, alive=alive)
        except PoolFull:
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(BUSY_BODY))),
                    ("Retry-After", str(self.pool.retry_after)),
                    ("Connection", "close"),
                ],
            )
            return [BUSY_BODY]
        except ClientGone:
            start_response(
                STATUS_CLIENT_GONE, [("Content-Length", "0"), ("Connection", "close")]
            )
            return []
        if isinstance(result, (SSEBody, list, tuple)):
            return result
        return _ThreadedBody(result, self.pool)


class _ThreadedBody:
    """A response body advanced in the pool, one chunk at a time."""

    def __init__(self, body: Iterable[bytes], pool: BlockingPool) -> None:
        self._body = body
        self._pool = pool
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def _next(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._body)
        return next(self._iterator, _DONE)

    def __next__(self) -> bytes:
        chunk = self._pool.apply(self._next, bounded=False)
        if chunk is _DONE:
            raise StopIteration
        return chunk  # type: ignore[no-any-return]

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._pool.apply(close, bounded=False)
