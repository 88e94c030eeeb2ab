"""The gsse connection handler: strict requests, plus the SSE fast path.

When a response's body is an :class:`~gsse.stream.SSEBody`, the handler
writes the headers and the first chunk at once (pywsgi alone would wait for
the first non-empty body chunk), then gives the socket to the stream and
runs the callback in the connection's greenlet. Everything else is plain
WSGI, read by :class:`~gsse.handler.RequestHandler`.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import gevent

from .handler import RequestHandler
from .headers import check_header
from .stream import SSEBody
from .stream import sse_body_of
from .streams import Stream
from .threaded import CONNECTION_KEY

__all__ = ["SSEHandler", "access_logger", "log_stream_end"]

access_logger = logging.getLogger("gsse.access")
#: Where refusals are logged (the connection handler's logger).
logger = logging.getLogger("gsse.handler")

#: First body writes up to this size go out with the response head in one send.
SMALL_FIRST_WRITE = 16 * 1024


def log_stream_end(
    stream: Stream, log: Any, head: str, head_bytes: int, started: float
) -> None:
    """Write a stream's access line once it ends: bytes, seconds, reason."""

    def write(stream: Stream) -> None:
        seconds = time.time() - started
        sent = head_bytes + stream.written
        log.write(f"{head} {sent} {seconds:.6f} ({stream.close_text})\n")

    stream.on_close(write)


class SSEHandler(RequestHandler):
    """pywsgi's connection handler: strict, with limits and the SSE fast path."""

    def handle(self) -> None:
        # pywsgi may write a response in two sends (headers, then body); with
        # Nagle's algorithm on, the second waits for the client's delayed ACK
        # (40 ms on Linux). Every small SSE event would wait the same way.
        sock: Any = self.socket
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (a Unix socket), or already closed
        super().handle()

    _requests = 0

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        # For handlers="threads": skip the work of a client that hung up.
        environ[CONNECTION_KEY] = self.socket
        return environ

    def handle_one_request(self) -> Any:
        # A keep-alive client that sends its next request before this one's
        # response is done finds it already readable: pywsgi would serve it
        # without ever yielding, and one busy connection would starve every
        # stream, timer and other client. Yield to the loop between requests.
        if self._requests:
            gevent.sleep(0)
        self._requests += 1
        return super().handle_one_request()

    def write_head(self, data: bytes) -> None:
        # pywsgi sends the head and the first body bytes in two system
        # calls; gather both and send once when the body is small (every
        # SSE preamble, most pages): a send is most of a small response's
        # cost on loopback.
        if len(data) > SMALL_FIRST_WRITE:
            super().write_head(data)
        else:
            self.write_head_in_one_send(data)

    _streamed: Stream | None = None

    def log_request(self) -> None:
        # pywsgi formats the access line before the logger can drop it; skip
        # the work (about 4 % of a stream's setup) when nobody listens.
        if not access_logger.isEnabledFor(logging.INFO):
            return
        stream, self._streamed = self._streamed, None
        if stream is None:
            super().log_request()
            return
        # A stream is logged when it ends, with its real length and duration
        # (as gunicorn does), and why it ended. pywsgi's line ends with
        # "<length> <seconds>": keep the rest, as formatted for this request.
        head = self.format_request().rsplit(" ", 2)[0]
        log_stream_end(
            stream, self.server.log, head, self.response_length, self.time_start
        )

    def process_result(self) -> None:
        body = sse_body_of(self.result)
        if body is not None and not self.headers_sent and self.command != "HEAD":
            self._stream(body)
        else:
            super().process_result()

    def refuse_stream(self) -> bool:
        """Answer ``429`` instead of a stream when its address has too many.

        Called just before a stream's headers are sent; ``True`` when it
        answered (the stream must not start).
        """
        limiter = self._limiter
        if limiter is None:
            return False
        ip = str(self.environ.get("REMOTE_ADDR", ""))
        if limiter.admit_stream(ip):
            return False
        limiter.stats.reject(429)
        logger.info("refused a stream to %s with 429: too many open streams", ip)
        body = b"too many open streams from this address\n"
        self.start_response(
            "429 Too Many Requests",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Retry-After", str(limiter.limits.retry_after)),
                ("Connection", "close"),
            ],
        )
        self.write(body)
        self.close_connection = True
        return True

    def _stream(self, body: SSEBody) -> None:
        if body.environ is None:
            # Flask swaps the response's class, so get_app_iter() never saw it.
            body.environ = self.environ
        if self.refuse_stream():
            return
        # Flask and others may change the headers after gsse.stream()
        # checked them: check what goes on the wire.
        for name, value in self.response_headers:
            check_header(name.decode("latin-1"), value.decode("latin-1"))
        # pywsgi writes status, headers and this first chunk in one go.
        self.write(body.preamble())
        # From here the stream owns the socket (its bare file descriptor,
        # not gevent's socket object) and ends the chunked body itself.
        sock, chunked = self.take_socket()
        self.release_connection()  # the registry counts it from now on
        self._streamed = body.serve_socket(sock, chunked)
