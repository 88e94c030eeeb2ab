"""One :class:`gsse.Server` on several addresses (``gsse run -b A -b B``).

The first address is the server's own listener; each further one is a
plain gevent ``StreamServer`` that hands its connections to the same WSGI
server. So every address shares one set of streams, limits, thread pool
and graceful shutdown, exactly as if it were one listener. Importing this
module imports gevent's server: do it after monkey-patching.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING
from typing import Any

from gevent.server import StreamServer

from .binding import DEFAULT_PORT
from .binding import Address
from .binding import remove_unix_socket
from .binding import unix_listener
from .config import BY_NAME
from .config import DEFAULT_BACKLOG
from .server import Server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


#: Attribute naming the :class:`Address` on an ``OSError`` from binding.
ADDRESS_ATTRIBUTE = "gsse_address"


def _listener(address: Address, backlog: int) -> socket.socket | None:
    """A bound socket for a Unix address; ``None`` for TCP (gevent binds it)."""
    if address.path is None:
        return None
    try:
        return unix_listener(address.path, backlog)
    except OSError as exc:
        setattr(exc, ADDRESS_ATTRIBUTE, address)
        raise


class ListeningServer(Server):
    """A :class:`Server` that also accepts on ``addresses[1:]``.

    ``start`` binds every address or none: if one cannot be bound, those
    already bound are closed again and the ``OSError`` is raised with its
    ``gsse_address`` attribute set to the address at fault.
    """

    def __init__(
        self, app: WSGIApplication, addresses: list[Address], **options: Any
    ) -> None:
        if not addresses:
            raise ValueError("addresses must name at least one address, got []")
        self.addresses = addresses
        self._extra: list[StreamServer] = []
        self._unix_paths: list[str] = []
        #: Every address gets the server's backlog, Unix sockets included.
        self._backlog: int = options.get("backlog", DEFAULT_BACKLOG)
        BY_NAME["backlog"].check(self._backlog)
        first = addresses[0]
        listener = _listener(first, self._backlog)
        if first.path is not None:
            self._unix_paths.append(first.path)
        try:
            super().__init__(
                app,
                first.host,
                first.port if first.path is None else DEFAULT_PORT,
                listener=listener,
                **options,
            )
        except BaseException:
            self._close_listeners()
            if listener is not None:
                listener.close()
            raise

    def start(self) -> None:
        address = self.addresses[0]
        try:
            super().start()
            for address in self.addresses[1:]:
                listener: Any = _listener(address, self._backlog)
                if listener is None:
                    listener = (address.host, address.port)
                else:
                    self._unix_paths.append(str(address.path))
                backlog = None if isinstance(listener, socket.socket) else self._backlog
                extra = StreamServer(listener, handle=self.wsgi.handle, backlog=backlog)
                extra.start()
                self._extra.append(extra)
        except BaseException as exc:
            if isinstance(exc, OSError) and not hasattr(exc, ADDRESS_ATTRIBUTE):
                setattr(exc, ADDRESS_ATTRIBUTE, address)
            self._close_listeners()
            self.wsgi.close()
            raise

    @property
    def urls(self) -> list[str]:
        """Where the server listens: ``http://HOST:PORT`` or ``unix:PATH``."""
        urls = [self._url(self.wsgi, self.addresses[0])]
        for server, address in zip(self._extra, self.addresses[1:], strict=False):
            urls.append(self._url(server, address))
        return urls

    @staticmethod
    def _url(server: StreamServer, address: Address) -> str:
        if address.path is not None:
            return str(address)
        bound = Address(str(server.server_host), int(server.server_port))
        return f"http://{bound}"

    def stop(self, graceful_timeout: float | None = None) -> int:
        """Stop accepting on every address first, then shut down as usual."""
        for extra in self._extra:
            extra.close()
        try:
            return super().stop(graceful_timeout)
        finally:
            self._close_listeners()

    def _close_listeners(self) -> None:
        for extra in self._extra:
            extra.close()
        for path in self._unix_paths:
            remove_unix_socket(path)
