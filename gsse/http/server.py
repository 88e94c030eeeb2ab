"""gevent's ``StreamServer``, serving HTTP/1.1 with gsse's own connections.

gevent accepts and spawns a greenlet per connection; everything HTTP is
gsse's. The server carries what every connection shares: the app, the
environ keys common to all requests, and the :class:`~gsse.limits.Limiter`.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING
from typing import Any

from gevent.server import StreamServer

from ..limits import Limiter
from .connection import Connection
from .environ import base_environ

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["HTTPServer"]


class _ErrorStream:
    """``wsgi.errors``: what the app writes there goes to the ``gsse.error`` log."""

    def __init__(self) -> None:
        self._logger = logging.getLogger("gsse.error")

    def write(self, text: str) -> None:
        text = text.rstrip("\n")
        if text:
            self._logger.error(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing is buffered."""


class HTTPServer(StreamServer):  # type: ignore[misc]
    """Serves ``app`` over HTTP/1.1 on ``listener``.

    :param listener: an address ``(host, port)`` or a bound socket.
    :param app: the WSGI application.
    :param limiter: the limits and live counts the connections check.
    :param environ: keys added to every request's environ.
    :param backlog: the listen backlog (``None``: gevent's default).
    """

    def __init__(
        self,
        listener: Any,
        app: WSGIApplication,
        limiter: Limiter,
        environ: dict[str, Any] | None = None,
        backlog: int | None = None,
    ) -> None:
        super().__init__(listener, backlog=backlog)
        self.app = app
        self.limiter = limiter
        self.environ = dict(environ or {})
        self.errors = _ErrorStream()
        self.base_environ: dict[str, Any] = {}

    def init_socket(self) -> None:
        super().init_socket()
        address = self.address
        if isinstance(address, tuple):
            try:
                name = socket.getfqdn(address[0])
            except OSError:
                name = str(address[0])
            port = str(address[1])
        else:
            name, port = "", ""
        self.base_environ = base_environ(name, port, self.errors, self.environ)

    def handle(self, sock: Any, address: Any) -> None:
        Connection(self, sock, address).run()
