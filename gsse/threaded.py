"""``handlers="threads"``: ordinary WSGI handlers run in pool threads.

For apps whose request handlers block in ways gevent cannot make
cooperative (C database drivers, CPU work, libraries that keep their own
sockets): each request's ``app(environ, start_response)`` call, and the
iteration of its body, run in a real OS thread of the server's
:class:`~gsse.bridge.BlockingPool`, so the event loop stays free for
streams, keep-alives and other requests.

Deliberate choices:

- Sockets belong to the loop's thread, so the request body is read into
  memory in the loop before the handler starts (bounded by the server's
  ``max_body_size``); ``start_response``'s ``write()`` is handed back to
  the loop.
- A handler that returns a stream (``event.start_sse()``, ``gsse.stream``)
  hands its response back to the loop: the stream is served on the fast
  path and its callback runs as a greenlet, or in the pool with
  ``blocking=True``, exactly as in the default mode.
- A body that is a list or tuple is already in memory and is sent from the
  loop; any other iterable is advanced in the pool, one chunk at a time.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

import gevent

from .bridge import BlockingPool
from .bridge import call_in_loop
from .stream import SSEBody

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

_DONE = object()


class ThreadedHandlers:
    """Wraps a WSGI app so that its handlers run in ``pool``'s threads."""

    def __init__(self, app: WSGIApplication, pool: BlockingPool) -> None:
        self.app = app
        self.pool = pool

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        hub = gevent.get_hub()

        def start_from_thread(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            # pywsgi's start_response only records the status and headers
            # (the loop's greenlet is parked meanwhile); its write() does I/O.
            write = start_response(status, headers, exc_info)
            return lambda data: call_in_loop(hub, write, data)

        result = self.pool.apply(self.app, environ, start_from_thread)
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
        chunk = self._pool.apply(self._next)
        if chunk is _DONE:
            raise StopIteration
        return chunk  # type: ignore[no-any-return]

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._pool.apply(close)
