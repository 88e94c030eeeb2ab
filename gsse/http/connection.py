"""One connection's request loop: read a head, run the app, answer, repeat.

Keep-alive and pipelining (requests are served in turn, and the loop
yields to the hub between two, so one busy client cannot starve streams,
timers and other clients), the :class:`~gsse.limits.Limits` (``503``,
``413``, ``408``, ``414``, ``431`` answered before the app runs), and the
SSE fast path: a response whose body is an :class:`~gsse.stream.SSEBody`
sends its head and first chunk at once, then the socket (its bare file
descriptor) belongs to the stream, and this greenlet ends.

A client's misbehaviour is never a server error: at most one INFO line
(DEBUG for a malformed request), its bytes escaped, and no traceback.
"""

from __future__ import annotations

import _socket
import logging
import socket
import time
from typing import TYPE_CHECKING
from typing import Any

import gevent

from ..body import BodyError
from ..framing import FramingError
from ..headers import check_header
from ..limits import REASONS
from ..limits import error_response
from ..logsafe import escape
from ..stream import SSEBody
from ..stream import sse_body_of
from ..threaded import CONNECTION_KEY
from .accesslog import ACCESS_WRITER
from .accesslog import access_line
from .accesslog import access_logger
from .accesslog import log_stream_end
from .body import RequestBody
from .environ import request_environ
from .parser import Head
from .parser import parse_head
from .reader import HeadTimeout
from .reader import SocketReader
from .response import Response

if TYPE_CHECKING:
    from .server import HTTPServer

__all__ = ["Connection"]

#: Refusals and client errors (the name of the connection handler's logger).
logger = logging.getLogger("gsse.handler")
error_logger = logging.getLogger("gsse.error")

CLIENT_ERRORS = BodyError


class Connection:
    """Serves the requests of one accepted socket, in turn."""

    __slots__ = (
        "server",
        "sock",
        "address",
        "reader",
        "handed_off",
        "client_error",
        "response",
    )

    def __init__(self, server: HTTPServer, sock: Any, address: Any) -> None:
        self.server = server
        self.sock = sock
        self.address = address
        self.reader = SocketReader(sock)
        #: The socket now belongs to a stream.
        self.handed_off = False
        self.client_error: BaseException | None = None
        self.response: Response | None = None

    def run(self) -> None:
        sock = self.sock
        try:
            # With Nagle's algorithm, a second small send waits for the
            # client's delayed ACK (40 ms on Linux): every SSE event would.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (a Unix socket), or already closed
        limiter = self.server.limiter
        limiter.connections += 1
        try:
            self._serve()
        except OSError as exc:
            logger.debug("connection from %s failed: %s", self._client(), exc)
        finally:
            if not self.handed_off:
                limiter.connections -= 1
                self._drain()

    def _client(self) -> str:
        address = self.address
        return str(address[0] if isinstance(address, tuple) else address or "-")

    def _serve(self) -> None:
        limits = self.server.limiter.limits
        reader = self.reader
        served = False
        while True:
            if served:
                gevent.sleep(0)  # the next pipelined request waits its turn
            served = True
            try:
                data = reader.read_head(limits.header_timeout, limits.max_header_size)
            except FramingError as exc:
                self._refuse(exc.status, str(exc), bytes(reader.buffer))
                return
            except HeadTimeout:
                self._refuse(
                    408, "the request took too long to arrive", bytes(reader.buffer)
                )
                return
            if data is None:
                return
            started = time.time()
            try:
                head = parse_head(data, limits.max_header_count)
            except FramingError as exc:
                self._refuse(exc.status, str(exc), data)
                return
            if self.server.limiter.over_connections():
                self._refuse(
                    503,
                    "the server is at its connection limit",
                    data,
                    limits.retry_after,
                )
                return
            if (
                limits.max_body_size is not None
                and (head.length or 0) > limits.max_body_size
            ):
                self._refuse(413, "the request body is too large", data)
                return
            if not self._respond(head, started):
                return

    # -- one request -------------------------------------------------------

    def _respond(self, head: Head, started: float) -> bool:
        """Serve one request; whether the connection may serve another."""
        server = self.server
        limits = server.limiter.limits
        response = Response(self._send, head.method, head.version, head.keep_alive)
        self.response = response
        self.client_error = None
        body = RequestBody(
            self.reader,
            head.length,
            head.chunked,
            self._body_failed,
            limit=limits.max_body_size if head.chunked else None,
            idle_timeout=limits.body_idle_timeout,
            total_timeout=limits.body_timeout,
            expect_continue=head.expect_continue,
            started=lambda: response.headers_sent,
        )
        if head.expect_continue:
            response.awaits_continue = lambda: body.awaits_continue
        environ = request_environ(server.base_environ, head, self.address, body)
        environ[CONNECTION_KEY] = self.sock
        result: Any = None
        try:
            result = server.app(environ, response.start_response)
            stream = sse_body_of(result)
            if (
                stream is not None
                and not response.headers_sent
                and not response.head_only
            ):
                return self._stream(stream, result, response, environ, head, started)
            response.send_result(result)
        except CLIENT_ERRORS as exc:
            # A body error the app let through: logged when it happened.
            response.keep_alive = False
            self._answer_error(response, int(getattr(exc, "code", 400)), exc)
        except OSError as exc:
            response.keep_alive = False
            logger.debug(
                "connection from %s failed mid-response: %s", self._client(), exc
            )
        except Exception:
            response.keep_alive = False
            error_logger.exception(
                "the application failed on %s %s",
                escape(head.method),
                escape(head.requestline, 200),
            )
            self._answer_error(response, 500, "Internal Server Error")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    error_logger.exception("the response's close() failed")
        if response.keep_alive and not body.done:
            response.keep_alive = self._finish_body(body)
        self._log(head.requestline, response.status, response.length, started)
        return response.keep_alive

    def _finish_body(self, body: RequestBody) -> bool:
        """Read what the app left of the body; whether the connection goes on."""
        if body.error is not None or body.awaits_continue:
            # The client waits for a "100 Continue" the app never asked
            # for: it may or may not send the body, so no request can follow.
            return False
        try:
            body.discard_rest()
        except (OSError, *CLIENT_ERRORS):
            return False
        return True

    def _stream(
        self,
        stream: SSEBody,
        result: Any,
        response: Response,
        environ: dict[str, Any],
        head: Head,
        started: float,
    ) -> bool:
        """The fast path: head and first chunk in one send, then hand off."""
        if stream.environ is None:
            # Flask swaps the response's class, so get_app_iter() never saw it.
            stream.environ = environ
        if self._refuse_stream(response, environ):
            self._log(head.requestline, response.status, response.length, started)
            return False
        # Flask and others may change the headers after gsse.stream()
        # checked them: check what goes on the wire (unless gsse built it).
        if stream.head is None or response.headers != stream.head:
            for name, value in response.headers:
                check_header(name, value)
        response.result = result
        # The head goes out with the callback's first event when it sends
        # one before the loop's next turn: one packet, not two.
        first = response.first_bytes(stream.preamble())
        response.length += len(first)
        # From here the stream owns the socket: its bare file descriptor, as
        # gevent closes its socket object when this greenlet ends.
        # Family, type and protocol given (else three system calls ask for
        # them); the descriptor is non-blocking already (gevent set it), and
        # the transport expects BlockingIOError, not a timeout.
        conn = self.sock
        sock = _socket.socket(conn.family, conn.type, conn.proto, conn.detach())
        self.handed_off = True
        self.server.limiter.connections -= 1  # the registry counts it now
        opened = stream.serve_socket(sock, response.chunked, first)
        if access_logger.isEnabledFor(logging.INFO):
            line = access_line(
                self._client(), head.requestline, response.status, None, started
            )
            log_stream_end(opened, ACCESS_WRITER, line, response.length, started)
        return False

    def _refuse_stream(self, response: Response, environ: dict[str, Any]) -> bool:
        """Answer ``429`` instead of a stream when its address has too many."""
        limiter = self.server.limiter
        ip = str(environ.get("REMOTE_ADDR", ""))
        if limiter.admit_stream(ip):
            return False
        limiter.stats.reject(429)
        logger.info("refused a stream to %s with 429: too many open streams", ip)
        data = error_response(
            429, "too many open streams from this address", limiter.limits.retry_after
        )
        self._send(data)
        response.status = "429 Too Many Requests"
        response.length = len(data)
        return True

    # -- errors ------------------------------------------------------------

    def _body_failed(self, error: BaseException) -> None:
        """The body went wrong: close after this response, say why once."""
        self.client_error = error
        if self.response is not None:
            self.response.keep_alive = False  # what follows is no request
        status = int(getattr(error, "code", 400))
        self.server.limiter.stats.reject(status)
        logger.log(
            _level(status),
            "refused the body of a request from %s with %d: %s (%s)",
            self._client(),
            status,
            escape(getattr(error, "description", None) or str(error)),
            escape(getattr(error, "detail", "")),
        )

    def _answer_error(self, response: Response, status: int, error: Any) -> None:
        if response.headers_sent:
            return
        text = getattr(error, "description", None) or str(error)
        data = error_response(status, text)
        response.status = f"{status} {REASONS[status]}"
        response.length = len(data)
        self._send(data)

    def _refuse(
        self, status: int, message: str, data: bytes, retry_after: int | None = None
    ) -> None:
        """Answer a request refused before the app ran; the connection closes."""
        line = data.split(b"\r\n", 1)[0][:200].decode("latin-1") if data else ""
        self.server.limiter.stats.reject(status)
        logger.log(
            _level(status),
            "refused a request from %s with %d: %s (request line: %s)",
            self._client(),
            status,
            message,
            escape(line, 200),
        )
        response = error_response(status, message, retry_after)
        try:
            self._send(response)
        except OSError:
            pass
        self._log(
            line or "-", f"{status} {REASONS[status]}", len(response), time.time()
        )

    # -- the socket and the access log -------------------------------------

    def _send(self, data: bytes) -> None:
        # One send() usually takes a whole response; gevent's sendall() costs
        # a getsockopt() and its chunking on every call.
        sock = self.sock
        sent = sock.send(data)
        if sent < len(data):
            sock.sendall(memoryview(data)[sent:])

    def _drain(self) -> None:
        """Read what the client sent unasked, so closing does not reset it."""
        try:
            self.sock.settimeout(0)
            self.sock.recv(16384)
        except OSError:
            pass

    def _log(self, requestline: str, status: str, length: int, started: float) -> None:
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                access_line(self._client(), requestline, status, length, started)
            )


def _level(status: int) -> int:
    """INFO for a limit an operator tunes; DEBUG for a malformed request."""
    return logging.DEBUG if status in (400, 501, 505) else logging.INFO
