"""Every use of gevent ``pywsgi``'s private surface, in one place.

gsse's handler overrides pywsgi methods whose names start with ``_`` and
reads or replaces attributes that gevent does not document. A gevent
release may rename or reshape any of them without notice, so they are all
here, each behind a public-named hook or function, and a gevent upgrade
means reading this one file (then ``tests/test_pywsgi_pin.py``, which checks
every name below exists and that gevent is in :data:`CHECKED_GEVENT`).

Checked against gevent 26.9.0 (``pyproject.toml`` caps gevent below
:data:`CHECKED_GEVENT`'s upper bound until the next check).

Private names used, and why:

``WSGIHandler._headers``
    re-reads the header lines and strips values with ``str.strip()``, which
    mangles UTF-8 in latin-1 text; gsse yields its own parsed fields
    (:meth:`PywsgiHandler.environ_headers`).
``WSGIHandler._write``
    writes one body piece; gsse drops the body of a ``HEAD`` response
    (:meth:`PywsgiHandler.write_body`).
``WSGIHandler._write_with_headers`` and ``WSGIHandler._sendall``
    pywsgi sends the head and the first body piece in two system calls;
    gsse gathers them into one send (:meth:`PywsgiHandler.write_head`,
    :meth:`PywsgiHandler.write_head_in_one_send`).
``WSGIHandler._handle_client_error``
    what to answer a request that could not be read
    (:meth:`PywsgiHandler.client_error_response`).
``WSGIHandler._send_error_response_if_possible``
    the answer to a body error raised while the app ran
    (:meth:`PywsgiHandler.send_error_if_possible`).
``WSGIHandler._connection_upgrade_requested``
    gsse serves no protocol upgrade (:meth:`PywsgiHandler.upgrade_requested`).
``OldMessage._headers``
    the header fields pywsgi's ``headers`` object holds
    (:func:`header_message`).
``Input._Input__read_chunk_length`` and ``Input._chunked_input_error``
    the chunk-size line parser, made strict by gsse
    (:meth:`StrictChunkedInput.read_chunk_length`).
``Input._discard``
    pywsgi reads what the app left of the body after the app ran
    (:meth:`InputDiscard.discard_rest`).
``_InvalidClientInput``
    the error class pywsgi answers with ``400`` (:data:`ClientInputError`).

Undocumented attributes replaced here: ``WSGIHandler.wsgi_input``
(:attr:`PywsgiHandler.request_input`), ``WSGIHandler.response_use_chunked``
and ``WSGIHandler.socket`` (:meth:`PywsgiHandler.take_socket`), ``Input.rfile``
and ``Input.socket`` (:func:`chunked_like`), and the constant
``MAX_REQUEST_LINE`` (the request-line size pywsgi answers ``414``). The
handler subclasses also read the request and response state pywsgi keeps
in the undocumented attributes of :data:`HANDLER_ATTRIBUTES`; the pin test
checks they exist on a handler that served a request.
"""

from __future__ import annotations

import _socket
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

from gevent.pywsgi import MAX_REQUEST_LINE
from gevent.pywsgi import Input
from gevent.pywsgi import OldMessage
from gevent.pywsgi import WSGIHandler
from gevent.pywsgi import _InvalidClientInput

from .framing import FramingError

__all__ = [
    "CHECKED_GEVENT",
    "HANDLER_ATTRIBUTES",
    "PRIVATE_NAMES",
    "ClientInputError",
    "MAX_REQUEST_LINE",
    "InputDiscard",
    "PywsgiHandler",
    "StrictChunkedInput",
    "chunked_like",
    "header_message",
]

#: The gevent versions this module was checked against: ``>=`` the first,
#: ``<`` the second (``pyproject.toml`` says the same).
CHECKED_GEVENT = ("24.2", "26.10")

#: Every private name used here, by the gevent class that must have it.
PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    "WSGIHandler": (
        "_headers",
        "_write",
        "_write_with_headers",
        "_sendall",
        "_handle_client_error",
        "_send_error_response_if_possible",
        "_connection_upgrade_requested",
        "wsgi_input",
        "response_use_chunked",
    ),
    "Input": ("_Input__read_chunk_length", "_discard", "rfile", "socket"),
}

#: Undocumented per-request attributes of ``WSGIHandler`` that gsse's
#: handlers read or set (checked on a handler that served a request).
HANDLER_ATTRIBUTES = (
    "close_connection",
    "command",
    "content_length",
    "environ",
    "headers_sent",
    "requestline",
    "response_headers",
    "response_length",
    "result",
    "rfile",
    "socket",
    "status",
    "time_start",
)

#: pywsgi's error for a malformed body: it answers it with ``400``.
ClientInputError = _InvalidClientInput

_T = TypeVar("_T")


def header_message(fields: Sequence[tuple[str, str]]) -> Any:
    """pywsgi's ``headers`` object (a ``Message``) holding ``fields``."""
    message = OldMessage()
    message._headers = fields
    return message


def chunked_like(cls: type[_T], inner: Any) -> _T:
    """A chunked body input of class ``cls`` over ``inner``'s file and socket."""
    return cls(inner.rfile, None, socket=inner.socket, chunked_input=True)  # type: ignore[call-arg]


class StrictChunkedInput(Input):  # type: ignore[misc]
    """pywsgi's ``Input`` with its chunk-size line reader replaced."""

    __slots__ = ()

    def read_chunk_length(self, rfile: Any) -> int:
        """Read one chunk-size line (and the trailers after the last chunk)."""
        raise NotImplementedError

    # pywsgi calls its private ``self.__read_chunk_length``; this is it.
    def _Input__read_chunk_length(self, rfile: Any) -> int:  # noqa: N802
        try:
            return self.read_chunk_length(rfile)
        except FramingError as exc:
            # pywsgi must not try to read the rest of a broken body.
            self._chunked_input_error = True  # type: ignore[misc]
            raise _InvalidClientInput(str(exc)) from None


class InputDiscard:
    """A ``wsgi.input`` that pywsgi may ask to read the rest of the body."""

    def discard_rest(self) -> None:
        """Read what the app left unread, so the connection can go on."""

    def _discard(self) -> None:
        self.discard_rest()


class PywsgiHandler(WSGIHandler):  # type: ignore[misc]
    """pywsgi's ``WSGIHandler``, its private hooks under public names."""

    # -- hooks: override these, not pywsgi's private methods ----------------

    def environ_headers(self) -> Iterator[tuple[str, str]]:
        """The ``HTTP_*`` environ entries of the request's header fields."""
        yield from WSGIHandler._headers(self)

    def write_body(self, data: bytes) -> None:
        """Send one piece of the response body (framed if chunked)."""
        WSGIHandler._write(self, data)

    def write_head(self, data: bytes) -> None:
        """Send the response head, then ``data``, the first body piece."""
        WSGIHandler._write_with_headers(self, data)

    def client_error_response(self, ex: BaseException) -> Any:
        """``(status, response bytes)`` for a request not read, or ``None``."""
        return WSGIHandler._handle_client_error(self, ex)

    def send_error_if_possible(self, error_code: int) -> None:
        """Answer ``error_code`` if nothing of the response was sent."""
        WSGIHandler._send_error_response_if_possible(self, error_code)

    def upgrade_requested(self) -> bool:
        """Whether the request asks for a protocol upgrade (WebSocket)."""
        return bool(WSGIHandler._connection_upgrade_requested(self))

    # -- helpers over undocumented attributes -------------------------------

    @property
    def request_input(self) -> Any:
        """pywsgi's ``Input`` for this request's body (or its replacement)."""
        return self.wsgi_input

    @request_input.setter
    def request_input(self, value: Any) -> None:
        self.wsgi_input = value

    def write_head_in_one_send(self, data: bytes) -> None:
        """pywsgi's head-and-first-piece write, gathered into one send."""
        parts: list[bytes] = []
        self._sendall = parts.append
        try:
            WSGIHandler._write_with_headers(self, data)
        finally:
            del self._sendall
        self._sendall(b"".join(parts))

    def take_socket(self) -> tuple[_socket.socket, bool]:
        """The connection's bare socket, and whether the response is chunked.

        From here the caller owns the socket and ends the body itself;
        pywsgi neither frames, closes nor reuses the connection. The caller
        gets the bare file descriptor: gevent closes the connection's socket
        object once the request's file objects are garbage-collected, which
        may be long before the caller is done with it.
        """
        chunked = bool(self.response_use_chunked)  # type: ignore[has-type]
        sock = _socket.socket(fileno=self.socket.detach())  # type: ignore[has-type]
        sock.setblocking(False)
        self.response_use_chunked = False
        self.close_connection = True
        self.socket = None
        return sock, chunked

    # -- pywsgi's private methods, forwarded to the hooks above -------------

    def _headers(self) -> Iterator[tuple[str, str]]:
        return self.environ_headers()

    def _write(self, data: bytes) -> None:
        self.write_body(data)

    def _write_with_headers(self, data: bytes) -> None:
        self.write_head(data)

    def _handle_client_error(self, ex: BaseException) -> Any:
        return self.client_error_response(ex)

    def _send_error_response_if_possible(self, error_code: int) -> None:
        self.send_error_if_possible(error_code)

    def _connection_upgrade_requested(self) -> bool:
        return self.upgrade_requested()
