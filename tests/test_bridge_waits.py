"""The bridge waits without polling, and undoes the process-wide state it sets.

A pool thread ahead of its client blocks on its stream's waiter, which the
loop sets; the GIL switch interval the pool lowers is put back by the
server that lowered it; write batching (corks) belongs to one server.
Assertions are on what happened (frames, counts, order), never durations.
"""

from __future__ import annotations

import gc
import json
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import gevent
import pytest
from gevent.monkey import get_original

from gsse import App
from gsse import ClientDisconnected
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.streams import Stream
from gsse.transport import Corks

from .helpers import RawStream
from .helpers import deadline_after
from .helpers import wait_until

pytestmark = pytest.mark.timeout(90)

_thread_ident = get_original("_thread", "get_ident")
_start_thread = get_original("_thread", "start_new_thread")
_allocate_lock = get_original("_thread", "allocate_lock")

Serve = Callable[..., Server]
EVENTS = 1000
CHUNK = "x" * 16 * 1024


def blocking_app(callback: Callable[[SSEWriter], object]) -> App:
    """/events streams ``callback`` in a pool thread (``blocking=True``)."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(callback, blocking=True)

    return app


class Flood:
    """A blocking callback that writes :data:`EVENTS` big events, numbered."""

    def __init__(self) -> None:
        self.thread = 0
        self.stream: Stream | None = None
        self.sent = 0
        self.outcome: list[BaseException | str] = []

    def __call__(self, writer: SSEWriter) -> None:
        self.thread = _thread_ident()
        self.stream = writer._stream  # for its waiter, in assertions
        try:
            with writer:
                for n in range(EVENTS):
                    writer.send_event(CHUNK, id=str(n))
                    self.sent += 1
            self.outcome.append("all sent")
        except BaseException as exc:
            self.outcome.append(exc)
            raise

    def parked(self) -> bool:
        """Whether the thread is blocked in its stream's waiter right now."""
        frame = sys._current_frames().get(self.thread) if self.thread else None
        return (
            frame is not None
            and frame.f_code.co_name == "wait"
            and frame.f_locals.get("self") is self.waiter
        )

    def quiet(self, seconds: float) -> bool:
        """Whether the thread stayed blocked in one wait for ``seconds``."""
        if not self.parked():
            gevent.sleep(seconds)
            return False
        waits = self.waiter.waits
        gevent.sleep(seconds)
        return self.parked() and self.waiter.waits == waits

    @property
    def waiter(self) -> Any:
        return None if self.stream is None else self.stream.thread_waiter


def slow_reader(port: int) -> socket.socket:
    """A client with a tiny receive window that asks for /events, then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def read_ids(sock: socket.socket) -> list[int]:
    """Read the response to its chunked end (bounded); the event ids in order."""
    data = bytearray()
    deadline = deadline_after(30)
    while not data.endswith(b"\r\n0\r\n\r\n") and time.monotonic() < deadline:
        piece = sock.recv(1 << 20)
        if not piece:
            break
        data += piece
    return [int(n) for n in re.findall(rb"\nid: (\d+)\n", bytes(data))]


def test_a_thread_ahead_of_its_client_blocks_until_the_loop_wakes_it(
    serve: Serve,
) -> None:
    """A thread ahead of its client blocks on its waiter (no polling) till it reads."""
    flood = Flood()
    server = serve(blocking_app(flood), send_timeout=60)
    sock = slow_reader(server.port)
    try:
        assert wait_until(flood.parked, timeout=30), "the thread never blocked"
        assert flood.sent < EVENTS
        # Once the kernel's buffers are full too, nothing moves: the thread
        # stays in one wait (a 5 ms poll would wake dozens of times). Up to
        # 20 looks, as the kernel may still be taking bytes at first.
        assert any(flood.quiet(0.3) for _ in range(20)), "the thread kept waking"
        ids = read_ids(sock)
    finally:
        sock.close()
    assert ids == list(range(EVENTS))
    assert wait_until(lambda: flood.outcome, timeout=10)
    assert flood.outcome == ["all sent"]


@pytest.mark.parametrize("end", ["client leaves", "server stops"])
def test_a_blocked_thread_is_woken_by_the_end_of_its_stream(
    serve: Serve, end: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread blocked on a full stream is woken with ClientDisconnected by its end."""
    flood = Flood()
    server = serve(blocking_app(flood), send_timeout=600)
    sock = slow_reader(server.port)
    try:
        assert wait_until(flood.parked, timeout=30), "the thread never blocked"
        if end == "client leaves":
            sock.close()
        else:
            server.stop(graceful_timeout=0)
        assert wait_until(lambda: flood.outcome, timeout=30)
    finally:
        sock.close()
    assert isinstance(flood.outcome[0], ClientDisconnected)
    assert not any("still running" in r.getMessage() for r in caplog.records)


SWITCH_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json
    import socket
    import sys

    from gsse import App, Server

    app = App()

    @app.route("/events")
    def events(event):
        event.start_sse()

        def hello(writer):
            with writer:
                writer.send_event("hello")

        event.set_stream_callback(hello, blocking=True)

    def one_stream(port):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /events HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            data = b""
            while not data.endswith(b"0\\r\\n\\r\\n"):
                piece = sock.recv(4096)
                if not piece:
                    break
                data += piece
        assert b"data: hello" in data, data

    sys.setswitchinterval(float(sys.argv[1]))
    seen = [sys.getswitchinterval()]
    first = Server(app, "127.0.0.1", 0)
    second = Server(app, "127.0.0.1", 0)
    first.start()
    second.start()
    one_stream(first.port)
    one_stream(second.port)
    seen.append(sys.getswitchinterval())
    first.stop(graceful_timeout=0)
    seen.append(sys.getswitchinterval())
    second.stop(graceful_timeout=0)
    seen.append(sys.getswitchinterval())
    print(json.dumps(seen))
    """
)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (0.005, [0.005, 0.001, 0.001, 0.005]),  # Python's: lowered, then put back
        (0.002, [0.002, 0.002, 0.002, 0.002]),  # the program's own: left alone
    ],
)
def test_the_switch_interval_is_put_back_when_the_last_server_stops(
    before: float, expected: list[float]
) -> None:
    """Pools lower the switch interval; the last server's stop puts it back."""
    done = subprocess.run(
        [sys.executable, "-c", SWITCH_SCRIPT, str(before)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_two_servers_in_one_process_share_no_corks(serve: Serve) -> None:
    """Each server batches its streams' writes in its own cork, not a shared one."""

    def hello(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("hello")

    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(hello)

    first = serve(app)
    second = serve(app)
    with RawStream(first.port) as stream:
        assert stream.events(1)[0].data == "hello"
    hub = gevent.get_hub()
    assert first.registry.corks.of(hub) is not second.registry.corks.of(hub)
    assert first.registry.corks.of(hub).flushes > 0
    assert second.registry.corks.of(hub).flushes == 0


def test_a_cork_goes_with_its_loop() -> None:
    """A loop's cork in another thread is dropped when its hub is destroyed."""
    corks = Corks()
    seen: list[int] = []
    done = _allocate_lock()
    done.acquire()

    def in_thread() -> None:
        try:
            hub = gevent.get_hub()
            corks.of(hub)
            seen.append(len(corks))
            hub.destroy(destroy_loop=True)
        finally:
            done.release()

    _start_thread(in_thread, ())
    assert done.acquire(True, 30)
    for _ in range(5):  # the hub's frames may sit in reference cycles
        gc.collect()
        if not len(corks):
            break
    assert seen == [1]
    assert len(corks) == 0
