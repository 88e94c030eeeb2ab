"""``gsse run``: serve in one process, with gunicorn workers, or under the reloader.

The one-process way patches the standard library for gevent before the app
is imported; ``--workers`` hands over to :mod:`gsse.workers`, ``--reload``
to :mod:`gsse.reloader`.
"""

from __future__ import annotations

import logging
import os

from .binding import Address
from .config import Config
from .gctune import tune_gc
from .launch import EXIT_ERROR
from .launch import EXIT_OK
from .launch import EXIT_USAGE
from .launch import import_app
from .launch import startup_line
from .usage import error
from .usage import listen_error
from .usage import missing_for
from .usage import server_address

logger = logging.getLogger("gsse")

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; the only place gsse configures logging."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)


def serve(config: Config) -> int:
    """Serve in this process until SIGTERM/SIGINT; return the exit code."""
    # Patch before the app (and whatever it imports) is loaded.
    from gevent import monkey

    monkey.patch_all()
    from .listen import ListeningServer
    from .reloader import follow_parent  # imports subprocess: after patching

    app = import_app(config)
    if isinstance(app, int):
        return app
    addresses: list[Address] = []
    try:
        addresses = config.addresses()
        server = ListeningServer(app, addresses, **config.server_options())
        server.start()
    except (TypeError, ValueError) as exc:
        error(str(exc))
        return EXIT_USAGE
    except ImportError as exc:  # --metrics-path without gsse[metrics]
        error(missing_for("--metrics-path", "metrics", exc))
        return EXIT_ERROR
    except OSError as exc:
        error(listen_error(server_address(exc, addresses), exc))
        return EXIT_ERROR
    # Handlers first, so a signal sent as soon as the line shows is graceful.
    server.install_signal_handlers()
    follow_parent(server.stop)
    tune_gc(config.gc)  # the app and the server exist now: frozen
    logger.info("%s", startup_line(config, ", ".join(server.urls)))
    server.serve_forever()
    logger.info("gsse stopped")
    return EXIT_OK


def run(config: Config) -> int:
    """Run ``config`` in the way it asks for; return the exit code."""
    if config.broker is not None:
        # Before any app import, and inherited by workers and reload children.
        os.environ["GSSE_BROKER"] = config.broker
    os.environ["GSSE_GC"] = config.gc  # read by workers and reload children
    if config.reload:
        from .reloader import run_with_reload

        return run_with_reload(config)
    if config.workers > 1:
        try:
            from .workers import serve_with_workers
        except (ImportError, RuntimeError) as exc:
            error(missing_for("--workers", "workers", exc))
            return EXIT_ERROR
        return serve_with_workers(config)
    return serve(config)
