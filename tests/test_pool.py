"""The thread pool's queue: bounded (503), and work of clients that left is skipped.

Both users of the queue are tested: ``blocking=True`` streams (the default
handler mode) and plain requests under ``handlers="threads"``. The pool is
filled with jobs that wait on a real lock, so the queue's state is known
before anything is released; tests assert counts and order, never durations.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.monkey import get_original

import gsse.pool
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.pool import BUSY_BODY

from .helpers import RawStream
from .helpers import http_get
from .helpers import wait_until

pytestmark = pytest.mark.timeout(60)

_allocate_lock = get_original("_thread", "allocate_lock")

Serve = Callable[..., Server]
MODES = ("streams", "handlers")


class Jobs:
    """``/slow`` waits for :meth:`release`; ``/job`` records that it ran."""

    def __init__(self) -> None:
        self.gate = _allocate_lock()
        self.gate.acquire()
        self.started = 0
        #: (the request's ``n``, how many tasks the pool had skipped by then)
        self.executed: list[tuple[str, int]] = []
        self.pool: Any = None

    def slow(self) -> None:
        self.started += 1
        if self.gate.acquire(True, 30):
            self.gate.release()  # let the next one through too

    def job(self, n: str) -> None:
        self.executed.append((n, self.pool.skipped))

    def release(self) -> None:
        self.gate.release()

    def app(self, mode: str) -> Any:
        """The app for ``mode``: blocking streams, or plain WSGI in threads."""
        if mode == "streams":
            app = App()

            @app.route("/slow")
            def slow(event: Event) -> None:
                def callback(writer: SSEWriter) -> None:
                    self.slow()
                    writer.send_event("slow done")

                event.start_sse()
                event.set_stream_callback(callback, blocking=True)

            @app.route("/job")
            def job(event: Event) -> None:
                n = event.request.args.get("n", "")

                def callback(writer: SSEWriter) -> None:
                    self.job(n)
                    writer.send_event("done")

                event.start_sse()
                event.set_stream_callback(callback, blocking=True)

            return app

        def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ["PATH_INFO"] == "/slow":
                self.slow()
                body = b"slow done"
            else:
                self.job(environ.get("QUERY_STRING", "").partition("=")[2])
                body = b"done"
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]

        return wsgi


@pytest.fixture
def jobs() -> Iterator[Jobs]:
    jobs = Jobs()
    yield jobs
    if jobs.gate.locked():
        jobs.release()  # never leave a pool thread stuck after a failure


def start(serve: Serve, jobs: Jobs, mode: str, **options: Any) -> Server:
    server = serve(
        jobs.app(mode),
        handlers="threads" if mode == "handlers" else "greenlets",
        **options,
    )
    jobs.pool = server.pool
    return server


def request(server: Server, path: str, mode: str) -> tuple[int, bytes]:
    """GET ``path``; for a stream, its first event's data."""
    if mode == "handlers":
        return http_get(server.port, path, timeout=30)
    with RawStream(server.port, path, timeout=30) as stream:
        return stream.status, stream.events(1, timeout=30)[0].data.encode()


def hang_up_requests(server: Server, path: str, count: int) -> list[socket.socket]:
    """Open ``count`` connections that each sent a GET for ``path``."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(sock)
    return socks


@pytest.mark.parametrize("mode", MODES)
def test_queued_work_of_clients_that_left_is_skipped(
    serve: Serve, jobs: Jobs, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """100 clients that hung up while queued never run; the next real one does."""
    server = start(serve, jobs, mode, threads=2, thread_queue=200)
    # 1. both threads busy with slow jobs
    slow = [gevent.spawn(request, server, "/slow", mode) for _ in range(2)]
    assert wait_until(lambda: jobs.started == 2, timeout=10)
    # 2. 100 requests queue up behind them, then all hang up at once
    socks = hang_up_requests(server, "/job?n=gone", 100)
    assert wait_until(lambda: server.pool.pending == 102, timeout=20)
    for sock in socks:
        sock.close()
    if mode == "streams":  # each stream noticed its client left
        assert wait_until(lambda: len(server.registry) == 2, timeout=10)
    # 3. a real request queues behind them; then the threads free up
    real = gevent.spawn(request, server, "/job?n=real", mode)
    assert wait_until(lambda: server.pool.pending == 103, timeout=10)
    jobs.release()
    assert real.get(timeout=30) == (200, b"done")
    assert [result for result in gevent.joinall(slow, timeout=30)]
    assert [g.value for g in slow] == [(200, b"slow done")] * 2
    # Only the real job ran, after all 100 were skipped.
    assert jobs.executed == [("real", 100)]
    assert server.pool.skipped == 100
    # Clients that leave are not the server's fault: no error, no traceback.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert wait_until(lambda: server.pool.pending == 0, timeout=10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("queue", [0, 1, 3])
def test_a_full_queue_answers_503_with_retry_after(
    serve: Serve, jobs: Jobs, mode: str, queue: int
) -> None:
    """Past ``thread_queue`` waiting tasks, new work gets 503 + Retry-After, unrun."""
    server = start(serve, jobs, mode, threads=1, thread_queue=queue, retry_after=7)
    slow = [gevent.spawn(request, server, "/slow", mode)]
    assert wait_until(lambda: jobs.started == 1, timeout=10)
    slow += [gevent.spawn(request, server, "/slow", mode) for _ in range(queue)]
    assert wait_until(lambda: server.pool.pending == 1 + queue, timeout=10)
    with RawStream(
        server.port, "/job?n=refused", headers={"Connection": "close"}, timeout=10
    ) as refused:
        assert refused.status == 503
        assert refused.headers["retry-after"] == "7"
        assert refused.read_to_end(10) == BUSY_BODY
    assert server.pool.refused == 1
    jobs.release()
    gevent.joinall(slow, timeout=30)
    assert [g.value for g in slow] == [(200, b"slow done")] * (1 + queue)
    # Once there is room again, work is taken.
    assert request(server, "/job?n=later", mode) == (200, b"done")
    assert jobs.executed == [("later", 0)]


@pytest.mark.parametrize("mode", MODES)
def test_work_that_waits_for_a_thread_is_logged_once_per_interval(
    serve: Serve,
    jobs: Jobs,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queued work that waited past SLOW_WAIT logs one warning with the queue depth."""
    caplog.set_level(logging.WARNING, logger="gsse.pool")
    server = start(serve, jobs, mode, threads=1)
    slow = [gevent.spawn(request, server, "/slow", mode)]
    assert wait_until(lambda: jobs.started == 1, timeout=10)
    monkeypatch.setattr(gsse.pool, "SLOW_WAIT", 0.0)  # from now on, any wait counts
    slow += [gevent.spawn(request, server, f"/job?n={n}", mode) for n in range(5)]
    assert wait_until(lambda: server.pool.pending == 6, timeout=10)
    jobs.release()
    gevent.joinall(slow, timeout=30)
    assert sorted(n for n, _ in jobs.executed) == [str(n) for n in range(5)]
    waited = [r for r in caplog.records if "for a pool thread" in r.getMessage()]
    assert len(waited) == 1, [r.getMessage() for r in waited]
    assert "1 threads busy, 4 task(s) still waiting" in waited[0].getMessage()


@pytest.mark.parametrize("queue", [-1, 1.5, "10", True])
def test_a_bad_thread_queue_is_refused(queue: object) -> None:
    """``thread_queue`` must be a whole number of at least 0."""
    with pytest.raises(ValueError, match="thread_queue must be an int"):
        Server(App(), port=0, thread_queue=queue)  # type: ignore[arg-type]
