"""examples/secure.py: the stream and the metrics open only to a signed-in client."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.examples.support import example_command
from tests.helpers import RawStream
from tests.procs import REPO
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import processes
from tests.reliability.support import raw_request

#: Spellings a router might take for /metrics; none may show the numbers.
METRICS_SPELLINGS = [
    "/metrics",
    "//metrics",
    "///metrics",
    "/%2Fmetrics",
    "/metrics/",
    "/metrics//",
    "/METRICS",
    "/Metrics",
    "/metrics;x=1",
    "/metrics%3Fx",
    "/metrics.",
    "/%6detrics",
    "/%256detrics",
    "/x/../metrics",
    "/./metrics",
    "/%2e/metrics",
    "/metrics/.",
    "/metrics%00",
    "/;x/metrics",
    "/%5Cmetrics",
    "http://127.0.0.1/metrics",
]


def get(port: int, target: str, cookie: str = "") -> tuple[int, bytes]:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    answer = raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode(), timeout=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_metrics_and_stream_need_the_session(tmp_path: Path) -> None:
    """Without the cookie every spelling of /metrics is refused; with it, both open."""
    args = example_command("secure")
    assert args[:2] == ["python", "examples/secure.py"]
    port = free_port()
    with processes(tmp_path) as procs:
        process = procs.start(
            [sys.executable, *args[1:]],
            cwd=REPO,
            env=clean_env(GSSE_PORT=str(port)),
        )
        process.wait_port(port, timeout=30)
        refused = []
        for target in ["/events", *METRICS_SPELLINGS]:
            status, body = get(port, target)
            assert status in (400, 401), (target, status)
            assert b"gsse_" not in body, target
            refused.append(target)
        with RawStream(port, "/login", headers={"Connection": "close"}) as login:
            cookie = login.headers["set-cookie"].split(";")[0]
        status, body = get(port, "/metrics", cookie)
        assert status == 200
        assert b"gsse_open_streams" in body
        denied = f"gsse_auth_denied_total {float(len(refused))}".encode()
        assert denied in body
        with RawStream(port, "/events", headers={"Cookie": cookie}) as stream:
            assert stream.status == 200
            stream.read_until(b"event: time", timeout=10)
