"""gsse.client.EventSource: spec-exact parsing, reconnects, failures, close().

The parsing cases are the shared vectors (tests/vectors/), fed in every
chunking, over real sockets from a raw-socket server, from a real gsse
server, and to headless Chromium for a cross-check.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.client import MAX_BACKOFF_MS
from gsse.client import EventSource
from gsse.client import EventSourceError
from gsse.client import parse
from gsse.wire import Message

from .browser import open_page
from .helpers import stream_app
from .helpers import wait_until
from .procs import free_port
from .vectors import ParseCase
from .vectors import as_dict
from .vectors import encode_cases
from .vectors import parse_cases

PARSE_CASES = parse_cases()

#: Three-way splits tried per case at most (all of them for short cases).
MAX_THREE_SPLITS = 3000


# -- a server that is not gsse: raw sockets, exact bytes -----------------------
Handler = Callable[[socket.socket, dict[str, str]], None]


class Origin:
    """A raw-socket HTTP/1.1 server; each path answers with exact bytes.

    It records every request's path and headers, so tests can see how often
    the client came back and what it sent.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def _handle(self, sock: socket.socket, address: object) -> None:
        sock.settimeout(5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                if not data:
                    return
                head += data
            request_line, *lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
            path = request_line.split()[1]
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.requests.append((path, headers))
            handler = self.routes.get(path, not_found)
            handler(sock, headers)
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            sock.close()

    def stop(self) -> None:
        self.server.stop(timeout=1)


def respond(
    sock: socket.socket,
    parts: list[bytes],
    *,
    status: str = "200 OK",
    content_type: str = "text/event-stream",
    pause: float = 0.0,
    hold: float = 0.0,
) -> None:
    """Answer with a close-delimited body sent as ``parts``, ``pause`` apart."""
    sock.sendall(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        "Cache-Control: no-cache\r\nConnection: close\r\n\r\n".encode()
    )
    for part in parts:
        sock.sendall(part)
        if pause:
            gevent.sleep(pause)
    if hold:
        gevent.sleep(hold)


def not_found(sock: socket.socket, headers: dict[str, str]) -> None:
    respond(
        sock, [b"no such stream"], status="404 Not Found", content_type="text/plain"
    )


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.stop()


def read_all(url: str, **options: Any) -> list[Message]:
    with EventSource(url, reconnect=False, timeout=60, **options) as source:
        return list(source)


# -- parsing: every chunking of every case -------------------------------------
def chunkings(raw: bytes, name: str) -> Iterator[list[bytes]]:
    """Whole, byte by byte, every 2-split, and every (or many) 3-splits."""
    yield [raw]
    yield [raw[i : i + 1] for i in range(len(raw))]
    for i in range(len(raw) + 1):
        yield [raw[:i], raw[i:]]
    pairs = list(itertools.combinations(range(1, len(raw)), 2))
    if len(pairs) > MAX_THREE_SPLITS:
        pairs = random.Random(name).sample(pairs, MAX_THREE_SPLITS)
    for i, j in pairs:
        yield [raw[:i], raw[i:j], raw[j:]]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda case: case.name)
def test_every_chunking_parses_the_same(case: ParseCase) -> None:
    """However the network splits a body, the same messages come out."""
    tried = 0
    for chunks in chunkings(case.raw, case.name):
        assert list(parse(chunks)) == case.messages, chunks
        tried += 1
    assert tried > len(case.raw)


def test_parse_starts_from_the_given_last_event_id() -> None:
    """A reconnection's messages carry the ID the client already had."""
    assert list(parse([b"data: a\n\n"], "41")) == [Message("a", id="41")]


# -- over real sockets ----------------------------------------------------------
def test_vectors_over_a_raw_server_byte_by_byte(origin: Origin) -> None:
    """Any SSE server works, even one that sends a byte per TCP segment."""
    for index, case in enumerate(PARSE_CASES):
        parts = [case.raw[i : i + 1] for i in range(len(case.raw))]
        origin.routes[f"/case/{index}"] = lambda sock, _, parts=parts: respond(
            sock, parts, pause=0.0005
        )
    for index, case in enumerate(PARSE_CASES):
        assert read_all(f"{origin.url}/case/{index}") == case.messages, case.name


def test_gsse_server_output_reads_back_identically(
    serve: Callable[..., Server],
) -> None:
    """What send_event writes, the client reads back as the vectors say."""
    cases = encode_cases()
    app = App()

    @app.route("/case/<int:index>")
    def case_stream(event: Event) -> None:
        kwargs = cases[event.path_params["index"]].kwargs

        def send(writer: SSEWriter) -> None:
            writer.send_event(**kwargs)
            writer.close()

        event.start_sse()
        event.set_stream_callback(send)

    server = serve(app)
    for index, case in enumerate(cases):
        messages = read_all(f"{server.url}/case/{index}")
        assert messages == case.messages, case.name


def test_sends_accept_headers_and_initial_last_event_id(origin: Origin) -> None:
    """Accept, no-cache, the caller's headers, and Last-Event-ID if given."""
    origin.routes["/s"] = lambda sock, _: respond(sock, [b"data: x\n\n"])
    messages = read_all(
        f"{origin.url}/s", last_event_id="41", headers={"Authorization": "Bearer t"}
    )
    assert messages == [Message("x", id="41")]
    [headers] = origin.hits("/s")
    assert headers["accept"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["authorization"] == "Bearer t"
    assert headers["last-event-id"] == "41"
    read_all(f"{origin.url}/s")
    assert "last-event-id" not in origin.hits("/s")[1]


def test_reconnects_after_retry_with_last_event_id(
    serve: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    """A dropped stream is resumed after ``retry`` ms from the last ID."""
    seen: list[tuple[str | None, float]] = []
    closed_at: list[float] = []
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        seen.append((event.last_event_id, time.monotonic()))
        first = event.last_event_id is None

        def send(writer: SSEWriter) -> None:
            if first:
                writer.send_event("a", id="1")
                writer.send_event("b", id="2", retry=200)
                closed_at.append(time.monotonic())
                writer.close()
            else:
                writer.send_event("c", id="3")
                gevent.sleep(5)

        event.start_sse()
        event.set_stream_callback(send)

    server = serve(app, ping=0)
    got: list[Message] = []
    caplog.set_level(logging.INFO, logger="gsse.client")
    with EventSource(f"{server.url}/events") as source:
        for message in source:
            got.append(message)
            if len(got) == 3:
                break
        assert source.retry == 200
        assert source.last_event_id == "3"
    assert got == [
        Message("a", id="1"),
        Message("b", id="2", retry=200),
        Message("c", id="3"),
    ]
    assert [last_id for last_id, _ in seen] == [None, "2"]
    # It waited the server's 200 ms (+ up to 10% jitter), never less; load
    # can only make the measured wait longer, so only the floor is checked.
    [notice] = [r.getMessage() for r in caplog.records if r.name == "gsse.client"]
    assert notice.endswith("the server ended the stream; reconnecting in 0.2 s")
    waited = seen[1][1] - closed_at[0]
    assert waited >= 0.2, waited


def test_reconnects_after_the_default_three_seconds(
    origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    """With no retry: field, the client waits 3 s (plus jitter), as browsers do."""
    origin.routes["/s"] = lambda sock, _: respond(sock, [b"id: 5\ndata: x\n\n"])
    times: list[float] = []
    caplog.set_level(logging.INFO, logger="gsse.client")
    with EventSource(f"{origin.url}/s", timeout=60) as source:
        for _ in itertools.islice(source, 2):
            times.append(time.monotonic())
    [notice] = [r.getMessage() for r in caplog.records if r.name == "gsse.client"]
    assert re.search(r"reconnecting in 3\.[0-3] s$", notice), notice
    assert times[1] - times[0] >= 3.0  # never sooner; load only adds to it
    assert origin.hits("/s")[1]["last-event-id"] == "5"


def test_reconnect_delay_doubles_and_caps() -> None:
    """Failed attempts in a row double the wait up to 30 s; jitter adds <= 10%."""
    source = EventSource("http://127.0.0.1:9/")
    source.close()
    for failures, base in [(0, 3.0), (1, 3.0), (2, 6.0), (3, 12.0), (4, 24.0)]:
        delays = [source.reconnect_delay(failures) for _ in range(50)]
        assert all(base <= d <= base * 1.1 for d in delays), (failures, delays)
    for failures in (5, 10, 100):
        assert MAX_BACKOFF_MS / 1000 <= source.reconnect_delay(failures) <= 33.0
    source.retry = 60_000  # a server asking for more than the cap gets it
    assert 60.0 <= source.reconnect_delay(7) <= 66.0


def test_gives_up_after_max_retries(caplog: pytest.LogCaptureFixture) -> None:
    """Network errors are retried, with backoff, max_retries times in a row."""
    url = f"http://127.0.0.1:{free_port()}/events"
    source = EventSource(url, max_retries=2)
    source.retry = 10
    caplog.set_level(logging.INFO, logger="gsse.client")
    with source, pytest.raises(EventSourceError, match="after 2 failed") as info:
        list(source)
    assert info.value.status is None
    # Two waits, of 10 ms then 20 ms (the retry doubled), then it gave up.
    notices = [r.getMessage() for r in caplog.records if r.name == "gsse.client"]
    assert [n.rsplit(";", 1)[1] for n in notices] == [" reconnecting in 0.0 s"] * 2
    with pytest.raises(EventSourceError, match="failed") as info:
        read_all(url)
    assert info.value.status is None


def test_204_ends_the_stream_quietly(origin: Origin) -> None:
    """HTTP 204 means: stop, do not reconnect."""
    origin.routes["/s"] = lambda sock, _: sock.sendall(
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    )
    with EventSource(f"{origin.url}/s") as source:
        assert list(source) == []
        assert source.closed
    assert len(origin.hits("/s")) == 1


@pytest.mark.parametrize(
    ("status", "content_type", "match"),
    [
        ("500 Internal Server Error", "text/event-stream", "HTTP 500"),
        ("404 Not Found", "text/plain", "HTTP 404"),
        ("200 OK", "text/html; charset=utf-8", "not text/event-stream"),
        ("200 OK", "text/event-streams", "not text/event-stream"),
    ],
)
def test_bad_responses_raise_and_never_reconnect(
    origin: Origin, status: str, content_type: str, match: str
) -> None:
    """A wrong status or Content-Type fails the stream for good."""
    origin.routes["/s"] = lambda sock, _: respond(
        sock, [b"data: x\n\n"], status=status, content_type=content_type
    )
    with EventSource(f"{origin.url}/s") as source:
        with pytest.raises(EventSourceError, match=match) as info:
            next(source)
        assert info.value.status == int(status.split()[0])
        assert info.value.content_type == content_type
        assert source.closed
        with pytest.raises(StopIteration):
            next(source)
    assert len(origin.hits("/s")) == 1


def test_content_type_parameters_and_case_are_accepted(origin: Origin) -> None:
    """The MIME type's essence is what counts, as in the browser."""
    origin.routes["/s"] = lambda sock, _: respond(
        sock, [b"data: x\n\n"], content_type="Text/Event-Stream; charset=utf-8"
    )
    assert read_all(f"{origin.url}/s") == [Message("x")]


def test_an_event_arrives_promptly(held_streams: list[str]) -> None:
    """One small event is delivered at once, not after a buffer fills."""
    for url in held_streams:
        # The server holds the connection for HOLD s after the event: only a
        # client that hands it over at once gets it within the (generous)
        # bound, which is also below the client's 60 s read timeout.
        with EventSource(url) as source, gevent.Timeout(30):
            assert next(source).data == "first"


#: How long the held streams stay open after their one event, in s: far
#: longer than any bound the tests wait with.
HOLD = 600


def one_then_wait(writer: SSEWriter) -> None:
    writer.send_event("first")
    gevent.sleep(HOLD)


@pytest.fixture
def held_streams(origin: Origin, serve: Callable[..., Server]) -> list[str]:
    """Two streams that send one event, then hold the connection open.

    One from gsse (keep-alive, chunked), one close-delimited from a raw
    server (there http.client lets go of the socket, so close() must find
    it through the body's file).
    """
    origin.routes["/s"] = lambda sock, _: respond(sock, [b"data: first\n\n"], hold=HOLD)
    server = serve(stream_app(one_then_wait), ping=0)
    return [f"{server.url}/events", f"{origin.url}/s"]


def test_close_from_another_greenlet_unblocks(held_streams: list[str]) -> None:
    """close() wakes a read blocked in another greenlet; its loop just ends."""
    for url in held_streams:
        close_from_a_greenlet(url)


def close_from_a_greenlet(url: str) -> None:
    source = EventSource(url)
    got: list[Message] = []
    reader = gevent.spawn(lambda: got.extend(source))
    assert wait_until(lambda: got, timeout=5)
    gevent.sleep(0.1)  # the reader is blocked on the socket again
    source.close()
    reader.join(timeout=30)  # it ends long before the server would
    assert reader.dead and reader.successful(), reader.exception
    assert got == [Message("first")]


@pytest.mark.parametrize("which", [0, 1], ids=["gsse", "close-delimited"])
def test_close_from_another_os_thread_unblocks(
    held_streams: list[str], which: int
) -> None:
    """The same with real threads, in a Python that gevent never patched."""
    script = textwrap.dedent(
        f"""
        import threading, time
        from gsse.client import EventSource
        source = EventSource("{held_streams[which]}")
        got = []
        reader = threading.Thread(target=lambda: got.extend(source))
        reader.start()
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        source.close()
        reader.join(30)  # the server holds the stream for {HOLD} s
        print([m.data for m in got], reader.is_alive())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    got, alive = done.stdout.split()
    assert got == "['first']"
    assert alive == "False"


# -- the browser cross-check ------------------------------------------------------
PAGE = """<!doctype html>
<title>vectors</title>
<script>
const cases = %(count)d;
const types = %(types)s;
window.results = {};
window.done = false;
function run(index) {
  if (index >= cases) { window.done = true; return; }
  const got = [];
  const source = new EventSource("/case/" + index);
  const record = (e) => got.push({data: e.data, event: e.type, id: e.lastEventId});
  for (const type of types) source.addEventListener(type, record);
  source.onerror = () => {
    source.close();
    window.results[index] = got;
    run(index + 1);
  };
}
run(0);
</script>
"""


@pytest.mark.browser
def test_client_and_chromium_agree_on_every_vector(origin: Origin) -> None:
    """For the same raw bytes, Chromium's EventSource and ours see the same."""
    types = sorted({m.event for case in PARSE_CASES for m in case.messages})
    page = PAGE % {"count": len(PARSE_CASES), "types": json.dumps(types)}
    origin.routes["/"] = lambda sock, _: respond(
        sock, [page.encode()], content_type="text/html; charset=utf-8"
    )
    for index, case in enumerate(PARSE_CASES):
        origin.routes[f"/case/{index}"] = lambda sock, _, raw=case.raw: respond(
            sock, [raw]
        )
    results = open_page(
        origin.url + "/",
        until="window.done === true",
        result="window.results",
        timeout=60,
    )
    for index, case in enumerate(PARSE_CASES):
        ours = [
            {k: v for k, v in as_dict(m).items() if k != "retry"}
            for m in read_all(f"{origin.url}/case/{index}")
        ]
        assert results[str(index)] == ours, case.name
