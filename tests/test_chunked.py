"""HTTP/1.1 chunked framing of stream bodies, outside the SSE format module."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsse import Server
from gsse import SSEWriter
from gsse.chunked import LAST_CHUNK
from gsse.chunked import chunk
from tests.helpers import stream_app

Serve = Callable[..., Server]


def unchunk(body: bytes) -> tuple[list[bytes], bytes]:
    """Split a chunked body into its chunks, and what follows the last chunk."""
    chunks: list[bytes] = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body.startswith(b"\r\n")  # no trailers, then the end
            return chunks, body[2:]
        chunks.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


def test_chunk_framing() -> None:
    """A chunk is the hex length, CRLF, the payload, CRLF; the end is a 0 chunk."""
    assert chunk(b"data: x\n\n") == b"9\r\ndata: x\n\n\r\n"
    assert chunk(b"a" * 255) == b"ff\r\n" + b"a" * 255 + b"\r\n"
    assert chunk(b"a" * 16) == b"10\r\n" + b"a" * 16 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


@given(st.lists(st.binary(min_size=1, max_size=70_000), max_size=5))
def test_chunks_read_back_whole(payloads: list[bytes]) -> None:
    """Any non-empty payloads, framed and ended, read back exactly, in order."""
    body = b"".join(chunk(p) for p in payloads) + LAST_CHUNK
    assert unchunk(body) == (payloads, b"")


@pytest.mark.timeout(30)
def test_a_stream_body_is_chunked_and_ends_with_the_last_chunk(serve: Serve) -> None:
    """Over a real socket, events come as chunks and the body ends with the 0 chunk."""

    def two(writer: SSEWriter) -> None:
        with writer:
            writer.send_event("one")
            writer.send_event("two")

    server = serve(stream_app(two))
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 30
        while not received.endswith(LAST_CHUNK) and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    chunks, rest = unchunk(body)
    assert rest == b""
    assert b"".join(chunks).endswith(b"data: one\n\ndata: two\n\n")
