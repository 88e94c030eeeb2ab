"""pywsgi's connection handler, made strict, bounded and quiet about clients.

gevent's ``pywsgi`` parses requests leniently (HTTP/0.9, any whitespace as
a separator, ``Content-Length: +5``, ``Transfer-Encoding`` beside
``Content-Length``), so bytes of one request's body could be served as
another request, and it prints tracebacks for some bad requests. This
handler takes over the few methods that read a request, in one place:

- the request line and the header lines go through :mod:`gsse.framing`;
  any ambiguity is answered (``400``, ``501``, ``505``) and the connection
  closed without reading another byte;
- the :class:`~gsse.limits.Limits` apply: sizes (``413``, ``431``), the
  connection count (``503``) and time (``408``): ``header_timeout`` for the
  request line and headers, and the body's timeouts through
  :class:`~gsse.body.BodyReader`;
- a client's misbehaviour is never a server error: at most one INFO line,
  its bytes escaped (:func:`gsse.logsafe.escape`), and no traceback; a
  connection reset mid-request is logged at DEBUG only.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import gevent

from .body import BodyReader
from .body import ChunkedInput
from .framing import FramingError
from .framing import body_framing
from .framing import check_host
from .framing import origin_form
from .framing import parse_field_lines
from .framing import parse_request_line
from .limits import REASONS
from .limits import Limiter
from .limits import Limits
from .limits import error_response
from .logsafe import escape
from .pywsgi_glue import MAX_REQUEST_LINE
from .pywsgi_glue import PywsgiHandler
from .pywsgi_glue import chunked_like
from .pywsgi_glue import header_message
from .stats import STATS
from .stats import ProcessStats
from .stats import Stats

logger = logging.getLogger(__name__)

__all__ = ["RequestHandler"]

#: The limits of a handler whose server has no limiter (not a gsse Server).
_DEFAULT_LIMITS = Limits()


class Refused(ValueError):
    """A request refused before the app ran; pywsgi sends ``response``."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.response = error_response(status, message, retry_after)


class HeaderTimeout(socket.timeout):
    """The client took too long to send a request (an ``OSError``)."""


class RequestHandler(PywsgiHandler):
    """Reads requests strictly and within :class:`~gsse.limits.Limits`."""

    _limiter: Limiter | None = None
    _counted = False
    _timer: Any = None
    #: The current request's line arrived only in part before the timeout.
    _line_timed_out = False
    #: The client error the current request ended with (for its status).
    _client_error: BaseException | None = None
    _fields: Sequence[tuple[str, str]] = ()
    #: The authority of an absolute-form request target (``None``: origin-form).
    _authority: str | None = None

    @property
    def limits(self) -> Limits:
        limiter = self._limiter
        return limiter.limits if limiter is not None else _DEFAULT_LIMITS

    def handle(self) -> None:
        limiter = self._limiter = getattr(self.server, "limiter", None)
        if limiter is None:
            super().handle()
            return
        limiter.connections += 1
        self._counted = True
        try:
            super().handle()
        finally:
            self._stop_timer()
            self.release_connection()

    def release_connection(self) -> None:
        """Stop counting this connection (its socket now belongs to a stream)."""
        if self._counted and self._limiter is not None:
            self._counted = False
            self._limiter.connections -= 1

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    # -- the request line and headers --------------------------------------

    def read_requestline(self) -> str:
        self._line_timed_out = False
        self._client_error = None
        timeout = self.limits.header_timeout
        if timeout:
            self._timer = gevent.Timeout.start_new(timeout, HeaderTimeout)
        rfile = self.rfile
        try:
            # Wait for the first byte: a connection that stays silent (or
            # idle between keep-alive requests) is closed without an answer.
            head = rfile.peek(1)
            if not head:
                self._stop_timer()
                return ""
            head = head[:200]
            try:
                line: str = rfile.readline(MAX_REQUEST_LINE).decode("latin-1")
                if line == "\r\n":
                    # RFC 9112 §2.2: ignore an empty line before a request
                    # (some clients send a CRLF after a body).
                    line = rfile.readline(MAX_REQUEST_LINE).decode("latin-1")
            except HeaderTimeout:
                # A request begun and not finished: answered 408 by read_request.
                self._line_timed_out = True
                return head.decode("latin-1").rstrip("\r\n") or "-"
        except BaseException:
            self._stop_timer()
            raise
        if not line.endswith("\n"):
            self._stop_timer()  # no headers will be read: EOF or 414
        return line

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 (pywsgi's name)
        limits = self.limits
        lines: list[str] = []
        size = 0
        while True:
            line = fp.readline(limits.max_header_size - size + 1)
            size += len(line)
            if size > limits.max_header_size:
                raise Refused(431, "the request headers are too large")
            if not line:
                raise Refused(400, "the request ended inside its headers")
            lines.append(line.decode("latin-1"))
            if line == b"\r\n":
                break
            if len(lines) > limits.max_header_count:
                raise Refused(431, "the request has too many header lines")
        self._fields = _framed(parse_field_lines, lines)
        return header_message(self._fields)

    def read_request(self, raw_requestline: str) -> bool:
        try:
            if self._line_timed_out:
                raise Refused(408, "the request took too long to arrive")
            request = _framed(parse_request_line, raw_requestline)
            self.requestline = raw_requestline.rstrip("\r\n")
            self.command = request.method
            self.path = request.target
            self._authority = None
            if "://" in request.target and request.method != "CONNECT":
                self._authority, self.path = _framed(origin_form, request.target)
            self.request_version = request.version
            self.headers = self.MessageClass(self.rfile, 0)
            framing = _framed(body_framing, self._fields, request.version)
            _framed(check_host, self._fields, request.version)
        except HeaderTimeout:
            raise Refused(408, "the request took too long to arrive") from None
        finally:
            self._stop_timer()
        self.content_length = framing.length
        self._chunked = framing.chunked
        # Every Connection line counts (a list may span several lines).
        tokens = {
            token.strip(" \t").lower()
            for name, value in self._fields
            if name.lower() == "connection"
            for token in value.split(",")
        }
        if request.version == "HTTP/1.1":
            self.close_connection = "close" in tokens
        else:
            self.close_connection = "keep-alive" not in tokens
        limits = self.limits
        limiter = self._limiter
        if limiter is not None and limiter.over_connections():
            raise Refused(
                503, "the server is at its connection limit", limits.retry_after
            )
        body_limit = limits.max_body_size
        if body_limit is not None and (framing.length or 0) > body_limit:
            raise Refused(413, "the request body is too large")
        return True

    _chunked = False

    def upgrade_requested(self) -> bool:
        # pywsgi hands an upgrade request the raw socket file as wsgi.input
        # (for WebSocket handlers), so the app reads past the body into the
        # next request, and pywsgi's lax chunk parser discards it. gsse
        # serves no protocol upgrade: every body is framed and limited.
        return False

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        if self._authority is not None:
            # RFC 9112 3.2.2: the target's authority, not the Host field.
            environ["HTTP_HOST"] = self._authority
        inner: Any = self.request_input
        if (self._chunked or self.content_length) and environ["wsgi.input"] is inner:
            limits = self.limits
            if self._chunked:
                inner = chunked_like(ChunkedInput, inner)
            self.request_input = environ["wsgi.input"] = BodyReader(
                inner,
                self.socket,
                self._body_failed,
                limit=limits.max_body_size if self._chunked else None,
                idle_timeout=limits.body_idle_timeout,
                total_timeout=limits.body_timeout,
            )
        return environ

    # -- client errors -----------------------------------------------------

    def _stats(self) -> Stats | ProcessStats:
        """Where this server counts refusals (its host's numbers)."""
        limiter: Limiter | None = getattr(self.server, "limiter", None)
        return limiter.stats if limiter is not None else STATS

    def _client(self) -> str:
        address = self.client_address
        return str(address[0] if isinstance(address, tuple) else address or "-")

    def _body_failed(self, error: BaseException | None) -> None:
        """The body went wrong: close after this response, say why once."""
        self.close_connection = True
        if error is None:
            return
        self._client_error = error
        status = int(getattr(error, "code", 400))
        self._stats().reject(status)
        logger.log(
            _level(status),
            "refused the body of %s %s from %s with %d: %s (%s)",
            escape(self.command or "-"),
            escape(self.path or "-", 200),
            self._client(),
            status,
            escape(getattr(error, "description", None) or str(error)),
            escape(getattr(error, "detail", "")),
        )

    def client_error_response(self, ex: BaseException) -> Any:
        self.close_connection = True
        if isinstance(ex, Refused):
            self._stats().reject(ex.status)
            logger.log(
                _level(ex.status),
                "refused a request from %s with %d: %s (request line: %s)",
                self._client(),
                ex.status,
                ex,
                escape(self.requestline or "", 200),
            )
            return (str(ex.status), ex.response)
        if ex is self._client_error:
            return None  # a body error, logged when it happened
        if isinstance(ex, OSError):
            # A reset or a broken connection before the request was whole.
            logger.debug(
                "connection from %s failed mid-request: %s", self._client(), ex
            )
            return None
        logger.error(
            "reading a request from %s failed (request line: %s)",
            self._client(),
            escape(self.requestline or "", 200),
            exc_info=ex,
        )
        return ("500", error_response(500, "the server failed to read the request"))

    def send_error_if_possible(self, error_code: int) -> None:
        error = self._client_error
        if error_code != 400 or error is None:
            super().send_error_if_possible(error_code)
            return
        self.close_connection = True
        if self.response_length or self.headers_sent:
            return
        status = int(getattr(error, "code", 400))
        body = f"{getattr(error, 'description', None) or error}\n".encode()
        try:
            self.start_response(
                f"{status} {REASONS[status]}",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ],
            )
            self.write(body)
        except OSError:
            pass

    def environ_headers(self) -> Iterator[tuple[str, str]]:
        # pywsgi re-reads the header lines and strips values with
        # str.strip(), which on latin-1 text also eats \x85 and \xa0, the
        # last byte of many UTF-8 characters ("voilà" arrived as "voilÃ").
        # The fields parsed above are already trimmed of spaces and tabs, the
        # only optional whitespace (RFC 9110 §5.5). Names with "_" are
        # dropped, as pywsgi does, so that they cannot pose as ones with "-".
        for name, value in self._fields:
            key = name.replace("-", "_").upper()
            if "_" not in name and key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield "HTTP_" + key, value

    def write_body(self, data: bytes) -> None:
        # A response to HEAD has no body (RFC 9110 §9.3.2): pywsgi would send
        # what the app returns and a chunked terminator, which a keep-alive
        # client then reads as the start of the next response.
        if self.command != "HEAD":
            super().write_body(data)

    def process_result(self) -> None:
        if self.command != "HEAD":
            super().process_result()
        elif self.status and not self.headers_sent:
            self.write(b"")  # the head alone; the body is never iterated

    def finalize_headers(self) -> None:
        super().finalize_headers()
        # A response after which the connection closes says so (pywsgi only
        # does for HTTP/1.0), so the client does not send another request.
        if self.close_connection and not any(
            name.lower() == b"connection" for name, _ in self.response_headers
        ):
            self.response_headers.append((b"Connection", b"close"))

    def format_request(self) -> str:
        line = self.requestline
        self.requestline = escape(line) if line else line
        try:
            text: str = super().format_request()
        finally:
            self.requestline = line
        return text


def _level(status: int) -> int:
    """INFO for a limit an operator tunes; DEBUG for a malformed request.

    A malformed request already has its (escaped) line in the access log;
    its reason is for debugging, and garbage must not flood the log.
    """
    return logging.DEBUG if status in (400, 501, 505) else logging.INFO


def _framed(check: Any, *args: Any) -> Any:
    """``check(*args)``, its :class:`FramingError` turned into :class:`Refused`."""
    try:
        return check(*args)
    except FramingError as exc:
        raise Refused(exc.status, str(exc)) from None
