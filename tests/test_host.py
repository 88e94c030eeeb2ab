"""One host per server or middleware: one environ key, nothing shared, no signals.

Every test serves on real sockets; the processes of the shutdown tests are
in tests/test_middleware.py (the same sequence under every host).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest
from flask import Flask

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.host import HOST_KEY
from gsse.host import Host
from gsse.host import HostView
from gsse.metrics import STATS
from gsse.settings import StreamSettings
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)


def keys_app() -> App:
    """An App whose ``/keys`` lists the environ keys gsse set for the request."""
    app = App()

    @app.route("/keys")
    def keys(event: Event) -> list[str]:
        environ = event.request.environ
        return sorted(k for k in environ if k.startswith("gsse."))

    return app


def gsse_keys(port: int) -> list[str]:
    status, body = http_get(port, "/keys")
    assert status == 200
    keys: list[str] = json.loads(body)
    return keys


def test_a_request_under_the_server_finds_its_host_under_one_key(
    serve: Serve,
) -> None:
    """Server alone, or with SSEMiddleware: gsse.host (and the connection)."""
    server = serve(keys_app())
    assert gsse_keys(server.port) == ["gsse.connection", HOST_KEY]
    wrapped = serve(gsse.SSEMiddleware(keys_app()))
    assert gsse_keys(wrapped.port) == ["gsse.connection", HOST_KEY]


def test_the_middleware_on_pywsgi_sets_one_key(pywsgi: Callable[..., int]) -> None:
    """Under a plain pywsgi server, the middleware's own host: one key."""
    middleware = gsse.SSEMiddleware(keys_app())
    assert gsse_keys(pywsgi(middleware)) == [HOST_KEY]


def test_the_middleware_joins_the_servers_host(serve: Serve) -> None:
    """Under the gsse server the middleware's streams are the server's."""
    seen: list[Any] = []

    def remember(writer: SSEWriter) -> None:
        seen.append(writer)

    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> Any:
        return gsse.stream(remember, ping=0)

    middleware = gsse.SSEMiddleware(flask_app)
    server = serve(middleware)
    with RawStream(server.port, "/events"):
        assert wait_until(lambda: len(seen) == 1)
        assert len(server.registry) == 1
        assert len(middleware.hosting.registry) == 0
        assert middleware.open_streams == 1
        seen[0].close()


def test_two_servers_in_one_process_share_nothing(serve: Serve) -> None:
    """Counters, metrics, pools, settings and shutdown are each server's own."""
    pytest.importorskip("prometheus_client")

    def ticks(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("one")
            while not writer.shutting_down:
                gevent.sleep(0.05)
            writer.send_event("bye")

    first = serve(stream_and_keys(ticks), ping=7, threads=2, metrics_path="/m")
    second = serve(stream_and_keys(ticks), ping=9, threads=3, metrics_path="/m")
    assert first.hosting is not second.hosting
    assert first.pool is not second.pool
    assert (first.pool.size, second.pool.size) == (2, 3)
    assert first.registry is not second.registry
    assert first.hosting.stats is not second.hosting.stats
    opened = STATS.streams_opened
    with RawStream(first.port, "/events") as one:
        assert one.headers["x-gsse-ping"] == "7"
        one.read_until(b"data: one")
        with RawStream(second.port, "/events") as other:
            assert other.headers["x-gsse-ping"] == "9"
            other.read_until(b"data: one")
            with RawStream(second.port, "/events") as again:
                again.read_until(b"data: one")
                assert first.hosting.stats.streams_opened == 1
                assert second.hosting.stats.streams_opened == 2
                # The process-wide numbers add both up.
                assert STATS.streams_opened == opened + 3
                assert metric(first.port, "gsse_open_streams") == 1
                assert metric(second.port, "gsse_open_streams") == 2
                # Shutting one server down tells its streams only.
                assert first.stop(graceful_timeout=5) == 0
                assert b"data: bye" in one.read_to_end()
                assert not second.hosting.shutting_down
                assert http_get(second.port, "/keys")[0] == 200
                assert len(second.registry) == 2 and not other.ended
                assert b"bye" not in other.body
    assert first.hosting.stats.streams_closed == 1


def stream_and_keys(callback: Callable[[SSEWriter], object]) -> App:
    app = keys_app()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(callback)

    return app


def metric(port: int, name: str) -> float:
    """One sample of a server's metrics path."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = http_get(port, "/m")
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not in the metrics")


def test_the_middleware_leaves_sigterm_alone(pywsgi: Callable[..., int]) -> None:
    """Streaming through the middleware on plain pywsgi changes no signal."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> Any:
        return gsse.stream(lambda writer: writer.close())

    middleware = gsse.SSEMiddleware(flask_app)
    port = pywsgi(middleware)
    with RawStream(port, "/events") as stream:
        assert stream.status == 200
        stream.read_to_end()
    after = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    assert after == before
    # Its own shutdown is an explicit call, and leaves the process running.
    assert middleware.shutdown(graceful_timeout=0) == 0
    assert middleware.hosting.shutting_down


def test_handle_sigterm_is_deprecated() -> None:
    """Passing handle_sigterm warns that it does nothing."""
    with pytest.warns(DeprecationWarning, match="never touches signals"):
        gsse.SSEMiddleware(Flask(__name__), handle_sigterm=False)


def test_shutdown_tells_streams_then_closes_the_rest(
    pywsgi: Callable[..., int],
) -> None:
    """Host.shutdown: shutting_down first, a grace period, then a clean close."""
    said: list[str] = []

    def polite(writer: SSEWriter) -> None:
        writer.send_event("hi")
        while not writer.shutting_down:
            gevent.sleep(0.05)
        said.append("told")
        writer.send_event("bye")  # and stays open: the deadline closes it

    flask_app = Flask(__name__)

    @flask_app.get("/events")
    def events() -> Any:
        return gsse.stream(polite, ping=0)

    middleware = gsse.SSEMiddleware(flask_app, graceful_timeout=0.2)
    with RawStream(pywsgi(middleware), "/events") as stream:
        stream.read_until(b"data: hi")
        assert middleware.shutdown() == 1  # one had to be closed
        body = stream.read_to_end()
        assert said == ["told"] and b"data: bye" in body
        assert stream.ended and not stream.cut
    # New streams are refused once the host shuts down; a second call is a no-op.
    assert middleware.shutdown() == 1


def test_a_host_view_is_never_changed_by_a_layer() -> None:
    """Layers put new views in the environ; the server's base view stays."""
    host = Host(settings=StreamSettings(ping=3))
    view = host.view
    layered = view.through(StreamSettings(send_timeout=4))
    assert isinstance(layered, HostView) and layered.host is host
    assert (view.settings.ping, view.settings.send_timeout) == (3, None)
    assert (layered.settings.ping, layered.settings.send_timeout) == (3, 4)


ALONE_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, socket, sys
    from flask import Flask
    from gevent.pywsgi import WSGIServer
    import gsse
    from tests.helpers import wait_until

    flask_app = Flask(__name__)
    seen = []

    def hello(writer):
        seen.append(sys.getswitchinterval())  # in a pool thread
        with writer:
            writer.send_event("hello")

    @flask_app.get("/events")
    def events():
        return gsse.stream(hello, blocking=True)

    server = WSGIServer(("127.0.0.1", 0), flask_app, log=None)
    server.start()
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", server.server_port)) as sock:
            sock.settimeout(30)
            sock.sendall(b"GET /events HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            data = b""
            while not data.endswith(b"0\\r\\n\\r\\n"):
                piece = sock.recv(4096)
                if not piece:
                    break
                data += piece
        assert b"data: hello" in data, data
        # The stream's own host ended with it and put the interval back.
        assert wait_until(lambda: sys.getswitchinterval() == 0.005, timeout=10)
    print(json.dumps(seen))
    """
)


def test_a_stream_without_a_host_gets_one_that_ends_with_it() -> None:
    """A bare Flask app on pywsgi: each blocking stream's host is its own."""
    done = subprocess.run(
        [sys.executable, "-c", ALONE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    # Lowered while each stream's thread ran, put back after each.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0.001, 0.001]
