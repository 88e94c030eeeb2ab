"""gsse: Server-Sent Events where handlers stay plain blocking code.

Importing gsse is safe before ``gevent.monkey.patch_all()``: nothing here
imports ``requests`` or ``redis`` (see ``gsse.client`` and ``gsse.brokers``).
"""

from ._version import __version__ as __version__
from .app import App as App
from .brokers import Broker as Broker
from .event import Event as Event
from .exceptions import BrokerUnavailable as BrokerUnavailable
from .exceptions import ClientDisconnected as ClientDisconnected
from .middleware import SSEMiddleware as SSEMiddleware
from .runs import Run as Run
from .runs import Runs as Runs
from .server import Server as Server
from .server import run as run
from .static import static_file as static_file
from .stream import SSEResponse as SSEResponse
from .stream import stream as stream
from .writer import SSEWriter as SSEWriter


def __getattr__(name: str) -> object:
    # gsse.django imports Django: load it only when asked for.
    if name == "django":
        import importlib

        return importlib.import_module(".django", __name__)
    raise AttributeError(f"module 'gsse' has no attribute {name!r}")


__all__ = [
    "App",
    "Broker",
    "BrokerUnavailable",
    "ClientDisconnected",
    "Event",
    "Run",
    "Runs",
    "SSEMiddleware",
    "SSEResponse",
    "SSEWriter",
    "Server",
    "__version__",
    "run",
    "static_file",
    "stream",
]
