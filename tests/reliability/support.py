"""Apps and resource probes shared by the reliability tests."""

from __future__ import annotations

import gc
import os
import socket
import time

import gevent
import greenlet

from gsse.metrics import STATS
from tests.helpers import stream_app as stream_app


def open_fds() -> int:
    """File descriptors this process has open now."""
    return len(os.listdir("/proc/self/fd"))


def live_greenlets() -> int:
    """Greenlets that are alive, found by a gc scan."""
    gc.collect()
    return sum(
        1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead
    )


def rss_kib() -> int:
    """This process's resident memory in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def baseline() -> tuple[int, int]:
    """(open fds, live greenlets) once things have settled."""
    gevent.sleep(0.1)
    return open_fds(), live_greenlets()


def counter(name: str) -> int:
    """A number from :data:`gsse.metrics.STATS` (disconnect causes included)."""
    snapshot = STATS.snapshot()
    if name in snapshot:
        return int(snapshot[name])
    return int(STATS.disconnects.get(name, 0))


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` raw; return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock, timeout)


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server closes (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    out = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            break
        if not data:
            break
        out += data
    return out


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def header_of(response: bytes, name: str) -> str | None:
    """One header of a raw HTTP response, or ``None``."""
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None
