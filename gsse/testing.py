"""Test your own streaming app from pytest: serve it, read its streams.

::

    from gsse.testing import read_events, serve

    def test_news_stream():
        with serve(app) as url:
            [first] = read_events(url + "/news", 1)
        assert first.data == "hello"

Deliberate choices:

- :func:`serve` runs the app with :class:`gsse.Server` on a free port of
  127.0.0.1, in this process, so the test sees the app's state and mocks.
  When the standard library is monkey-patched (``python -m gevent.monkey
  --module pytest``) the server runs as greenlets of this thread; otherwise
  it runs in a thread of its own with its own gevent loop, so a plain
  ``pytest`` works too and blocking client code cannot stall it.
- :func:`read_events` never waits for ever: it gives up after ``timeout``
  seconds with a :class:`TimeoutError` that says what did arrive.
- ``requests`` loads only when :func:`read_events` is called.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any

from .server import Server
from .wire import Message

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["read_events", "serve"]

#: Seconds :func:`serve` waits for a server thread to start or stop.
START_TIMEOUT = 10.0


def _patched() -> bool:
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


@contextmanager
def serve(app: WSGIApplication, **server_options: Any) -> Iterator[str]:
    """Serve ``app`` (a :class:`gsse.App` or any WSGI app) while the block runs.

    Yields the base URL, e.g. ``"http://127.0.0.1:54321"``; the server stops
    (open streams closed at once) when the block ends.

    :param server_options: passed on to :class:`gsse.Server`, e.g. ``ping=1``.

    .. versionadded:: 0.1
    """
    if _patched():
        server = Server(app, "127.0.0.1", 0, **server_options)
        server.start()
        try:
            yield server.url
        finally:
            server.stop(graceful_timeout=0)
        return
    with _ServerThread(app, server_options) as url:
        yield url


class _ServerThread:
    """A :class:`gsse.Server` on a gevent loop of its own, in a real thread."""

    def __init__(self, app: WSGIApplication, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options
        self.url = ""
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="gsse.testing server", daemon=True
        )

    def _run(self) -> None:
        import gevent

        try:
            server = Server(self.app, "127.0.0.1", 0, **self.options)
            server.start()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.url = server.url
        self.ready.set()
        try:
            # The main thread cannot touch this loop; it raises a flag instead.
            while not self.stopping.is_set():
                gevent.sleep(0.02)
        finally:
            server.stop(graceful_timeout=0)

    def __enter__(self) -> str:
        self.thread.start()
        if not self.ready.wait(START_TIMEOUT):
            raise TimeoutError(f"the test server did not start in {START_TIMEOUT} s")
        if self.error is not None:
            raise self.error
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(START_TIMEOUT)


def read_events(
    url: str, count: int, *, timeout: float = 5.0, **options: Any
) -> list[Message]:
    """Read ``count`` messages from the stream at ``url`` with the gsse client.

    :param timeout: seconds for the whole read, connecting included.
    :param options: passed on to :class:`gsse.client.EventSource`, e.g.
        ``last_event_id="41"`` or ``headers={"Authorization": ...}``.
    :raises TimeoutError: fewer than ``count`` arrived in time (the message
        lists those that did).
    :raises gsse.client.EventSourceError: the URL is not an event stream.

    .. versionadded:: 0.1
    """
    from .client import EventSource

    if count < 0:
        raise ValueError(f"count must be >= 0, got {count!r}")
    options.setdefault("timeout", (timeout, timeout))
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    with EventSource(url, **options) as source:
        timer = threading.Timer(timeout, source.close)
        timer.daemon = True
        timer.start()
        try:
            for message in source if count else ():
                messages.append(message)
                if len(messages) >= count:
                    break
        finally:
            timer.cancel()
    if len(messages) < count:
        waited = min(timeout, max(0.0, timeout - (deadline - time.monotonic())))
        raise TimeoutError(
            f"{url} delivered {len(messages)} of {count} events in {waited:.1f} s:"
            f" {messages!r}"
        )
    return messages
