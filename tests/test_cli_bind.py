"""``gsse run -b``/``-w`` and friends: the flags users type from gunicorn habit.

Real ``gsse run`` subprocesses; Unix sockets are read with a raw
``AF_UNIX`` client, TCP ones with :class:`~tests.helpers.RawStream`.
"""

from __future__ import annotations

import re
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gsse.wire import EventStreamDecoder

from .helpers import RawStream
from .helpers import http_get
from .procs import Processes
from .procs import clean_env
from .procs import free_port
from .procs import processes

APP = "tests.apps.cli_app:app"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with processes(tmp_path) as manager:
        yield manager


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for Unix sockets (their paths are limited to ~100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="gsse-") as name:
        yield Path(name)


class UnixStream(RawStream):
    """:class:`RawStream` over a Unix domain socket."""

    def __init__(self, path: Path, target: str = "/events", timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        self.sock.sendall(request.encode("latin-1"))
        self._raw = b""
        self.body = b""
        self.ended = False
        self.cut = False
        self.decoder = EventStreamDecoder()
        self._read_head(timeout)


def ticks_over_unix(path: Path) -> list[str]:
    with UnixStream(path) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        return [message.data for message in stream.events(2, timeout=10)]


def test_bind_unix_socket_serves_a_stream(procs: Processes, sockdir: Path) -> None:
    """``-b unix:PATH`` streams over the socket; shutdown removes the file."""
    path = sockdir / "gsse.sock"
    proc = procs.gsse("run", APP, "-b", f"unix:{path}")
    proc.wait_log(rf"serving {APP} on unix:{path} ")
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert ticks_over_unix(path) == ["tick 0", "tick 1"]
    proc.send(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not path.exists()


def test_bind_several_addresses_share_one_server(
    procs: Processes, sockdir: Path
) -> None:
    """Repeated ``-b``: every address serves, and the startup line names each."""
    one, two = free_port(), free_port()
    path = sockdir / "s.sock"
    proc = procs.gsse(
        "run", APP, "-b", f"127.0.0.1:{one}", "--bind", f"unix:{path}", "-b",
        f"127.0.0.1:{two}",
    )  # fmt: skip
    proc.wait_log(rf"on http://127.0.0.1:{one}, unix:{path}, http://127.0.0.1:{two} \(")
    proc.wait_port(two)
    assert http_get(one, "/") == (200, b"ok")
    assert http_get(two, "/") == (200, b"ok")
    assert ticks_over_unix(path) == ["tick 0", "tick 1"]
    # One server behind all three: one graceful shutdown ends every stream.
    with RawStream(one, "/events") as tcp, UnixStream(path) as unix:
        tcp.events(1, timeout=10)
        unix.events(1, timeout=10)
        proc.send(signal.SIGINT)
        for stream in (tcp, unix):
            stream.read_to_end(15)
            assert stream.ended and not stream.cut
            assert b"data: bye" in stream.body
    assert proc.wait(15) == 0


def test_bind_from_the_environment(procs: Processes, sockdir: Path) -> None:
    """GSSE_BIND takes space- or comma-separated addresses."""
    port = free_port()
    path = sockdir / "env.sock"
    env = clean_env(GSSE_BIND=f"127.0.0.1:{port}, unix:{path}")
    proc = procs.gsse("run", APP, env=env)
    assert proc.wait_ready() == port
    assert ticks_over_unix(path) == ["tick 0", "tick 1"]


def test_host_name_is_a_host(procs: Processes) -> None:
    """``--host localhost`` (a name, not an address) is served as usual."""
    proc = procs.gsse("run", APP, "--host", "localhost", "--port", "0")
    assert http_get(proc.wait_ready(), "/") == (200, b"ok")


def test_live_unix_socket_is_not_taken_over(procs: Processes, sockdir: Path) -> None:
    """A socket another server listens on is left alone: a clear error, exit 1."""
    path = sockdir / "busy.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        code, out = procs.gsse("run", APP, "-b", f"unix:{path}").run_to_end()
        assert code == 1, out
        assert f"Error: cannot listen on unix:{path}: Address already in use" in out
        assert stat.S_ISSOCK(path.stat().st_mode)


def test_stale_unix_socket_is_replaced(procs: Processes, sockdir: Path) -> None:
    """A socket file left by a killed server is replaced, not an error."""
    path = sockdir / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as old:
        old.bind(str(path))  # bound, then closed: nobody listens
    proc = procs.gsse("run", APP, "-b", f"unix:{path}")
    proc.wait_log(rf"serving {APP} on unix:{path} ")
    assert ticks_over_unix(path) == ["tick 0", "tick 1"]


def test_file_in_the_way_is_kept(procs: Processes, sockdir: Path) -> None:
    """A regular file at the socket path is never deleted."""
    path = sockdir / "notes.txt"
    path.write_text("keep me")
    code, out = procs.gsse("run", APP, "-b", f"unix:{path}").run_to_end()
    assert code == 1, out
    assert f"Error: cannot listen on unix:{path}" in out
    assert path.read_text() == "keep me"


def test_second_address_in_use_exits_1(procs: Processes) -> None:
    """When one of several addresses is taken, the error names that one."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        args = ("-b", f"127.0.0.1:{free_port()}", "-b", f"127.0.0.1:{busy}")
        code, out = procs.gsse("run", APP, *args).run_to_end()
    assert code == 1, out
    assert f"Error: cannot listen on 127.0.0.1:{busy}: Address already in use" in out


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("--host", "localhost:18030"),
            {},
            "invalid host 'localhost:18030': use an IP address or host name",
        ),
        (("--host", "localhost:18030"), {}, "--host localhost --port 18030"),
        (("--host", "http://example.com"), {}, "invalid host 'http://example.com'"),
        (("--host", "bad host"), {}, "invalid host 'bad host'"),
        (("--host", ""), {}, "invalid host ''"),
        ((), {"GSSE_HOST": "[::1]:80"}, "GSSE_HOST='[::1]:80'"),
        (("-b", ":8000"), {}, "name the host, e.g. 127.0.0.1:8000"),
        (("-b", "localhost:http"), {}, "invalid port in 'localhost:http'"),
        (("-b", "[::1]:70000"), {}, "invalid port in '[::1]:70000'"),
        (("-b", "[::1"), {}, "invalid address '[::1'"),
        (("-b", "unix:"), {}, "unix: needs a socket path"),
        (("-b", "127.0.0.1:\u00b2"), {}, "invalid port in '127.0.0.1:\u00b2'"),
        (("-b", "[::1]:\u0663"), {}, "invalid port in '[::1]:\u0663'"),
        (
            ("-b", "127.0.0.1:18030", "-b", "127.0.0.1:018030"),
            {},
            "127.0.0.1:18030 is given twice",
        ),
        (
            ("-b", "unix:/tmp/gsse-x.sock", "-b", "unix:/tmp/../tmp/gsse-x.sock"),
            {},
            "unix:/tmp/gsse-x.sock is given twice",
        ),
        (
            ("-b", "0.0.0.0:18030", "-b", "127.0.0.1:18030"),
            {},
            "0.0.0.0:18030 and 127.0.0.1:18030 overlap",
        ),
        (("-b", "[::1]:18030", "-b", "[::]:18030"), {}, "overlap"),
        ((), {"GSSE_BIND": "127.0.0.1:18030,127.0.0.1:18030"}, "given twice"),
        (("-b", "127.0.0.1:1", "--port", "2"), {}, "not both"),
        (("-b", "127.0.0.1:1", "--host=::1"), {}, "not both"),
        ((), {"GSSE_BIND": "localhost:x"}, "GSSE_BIND='localhost:x'"),
        (("-w", "0"), {}, "-w/--workers: must be at least 1"),
        (("-t", "30"), {}, "gsse has no worker timeout"),
        (("-k", "gevent"), {}, "gsse always runs its own gevent worker"),
        (("-p", "9000"), {}, "for the port use --port"),
        (("--uds", "/tmp/x"), {}, "for a Unix socket use -b unix:PATH"),
    ],
)
def test_bad_addresses_and_habits_exit_2(
    procs: Processes, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """A wrong host, address or foreign flag: a usage message saying what to type."""
    code, out = procs.gsse("run", APP, *args, env=clean_env(**env)).run_to_end()
    assert code == 2, out
    assert message in out, out
    assert "usage: gsse run" in out


@pytest.mark.parametrize(
    ("address", "host", "expected"),
    [
        ("[::1]:{port}", "::1", "http://[::1]:{port}"),
        ("localhost:{port}", "localhost", "http://127.0.0.1:{port}"),
    ],
)
def test_bind_ipv6_and_names(
    procs: Processes, address: str, host: str, expected: str
) -> None:
    """``-b [::1]:PORT`` and ``-b NAME:PORT`` listen where they say."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    port = free_port()
    proc = procs.gsse("run", APP, "-b", address.format(port=port))
    proc.wait_log("on " + re.escape(expected.format(port=port)) + " ")
    with socket.create_connection((host, port), timeout=5):
        pass


def test_workers_name_the_module_really_missing(
    procs: Processes, tmp_path: Path
) -> None:
    """gunicorn present but a module its worker imports missing: name that module."""
    shadow = tmp_path / "shadow"
    (shadow / "packaging").mkdir(parents=True)
    (shadow / "packaging" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'packaging'\", name='packaging')\n"
    )
    env = clean_env(PYTHONPATH=str(shadow))
    code, out = procs.gsse("run", APP, "-w", "2", env=env).run_to_end()
    assert code == 1, out
    assert "--workers needs the Python module 'packaging'" in out
    assert "pip install 'gsse[workers]'" in out
    assert "needs gunicorn" not in out


@pytest.mark.slow
def test_workers_bind_unix_and_tcp(procs: Processes, sockdir: Path) -> None:
    """``-w 2 -b unix:PATH -b HOST:PORT``: gunicorn's workers serve on both."""
    port = free_port()
    path = sockdir / "w.sock"
    proc = procs.gsse(
        "run", APP, "-w", "2", "-b", f"unix:{path}", "-b", f"127.0.0.1:{port}"
    )
    proc.wait_log(rf"on unix:{path}, http://127.0.0.1:{port} \(2 workers")
    proc.wait_port(port)
    assert http_get(port, "/") == (200, b"ok")
    assert ticks_over_unix(path) == ["tick 0", "tick 1"]
    proc.send(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not path.exists()


@pytest.mark.parametrize(
    ("args", "grace"),
    [((), "1.0"), (("--graceful-timeout", "7"), "7.0")],
    ids=["default", "explicit"],
)
def test_reload_has_a_short_grace_period(
    procs: Processes, tmp_path: Path, args: tuple[str, ...], grace: str
) -> None:
    """``--reload`` gives streams 1 s to end (unless told otherwise)."""
    pytest.importorskip("watchfiles")
    (tmp_path / "tiny_app.py").write_text("from gsse import App\n\napp = App()\n")
    port = free_port()
    proc = procs.gsse(
        "run", "tiny_app:app", "--port", str(port), "--reload", *args, cwd=tmp_path
    )
    first = proc.wait_log(r"\[(\d+)\] INFO gsse: gsse .* serving")
    procs.extra_pids.append(int(first.group(1)))
    proc.wait_port(port)
    proc.send(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert f"shutting down (open streams get {grace} s" in proc.log


def test_without_reload_the_grace_period_stays_10(procs: Processes) -> None:
    """Without ``--reload`` the default grace period is still 10 s."""
    proc = procs.gsse("run", APP, "--port", "0")
    proc.wait_ready()
    proc.send(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert "shutting down (open streams get 10.0 s" in proc.log
