"""A gunicorn hook: gsse's host and graceful shutdown for ``-k gevent`` workers.

gunicorn's own gevent worker knows nothing of streams: on SIGTERM it stops
accepting, waits its ``--graceful-timeout`` for connections (streams never
end by themselves) and then cuts them. With this hook each worker gets a
:class:`~gsse.host.Host`, as under ``gsse run``: every request finds it
(``SSEMiddleware`` joins it; a bare app's streams use it too), and SIGTERM
or Ctrl-C runs its one graceful sequence (``writer.shutting_down``, wait,
close with correct framing, join the pool) before the worker exits::

    gunicorn -k gevent -c python:gsse.gunicorn myproject.web:app

or, with a config file of your own, in ``gunicorn.conf.py``::

    from gsse.gunicorn import post_worker_init

Streams get gunicorn's ``--graceful-timeout`` less :data:`SHUTDOWN_MARGIN`
seconds, so that gunicorn never has to kill a worker with streams open. A
second Ctrl-C exits at once; SIGQUIT stays gunicorn's quick shutdown.
``gsse run --workers`` and ``-k gsse.workers.SSEWorker`` need no hook.

This module is read by gunicorn as a config file: every public name in it
must be a gunicorn setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import gevent

from .host import HOST_KEY
from .host import Host
from .signals import ShutdownSignals

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["post_worker_init"]

#: Seconds the worker keeps of gunicorn's grace period beyond the streams'.
SHUTDOWN_MARGIN = 2.0


def post_worker_init(worker: Any) -> None:
    """gunicorn's hook, after the app is loaded: host it, catch the signals."""
    if getattr(worker, "serves_gsse", False):
        return  # gsse's own worker: its servers have hosts and signals
    grace = max(float(worker.cfg.graceful_timeout) - SHUTDOWN_MARGIN, 0.0)
    host = Host(graceful_timeout=grace, owner=worker)
    worker.wsgi = _hosted(worker.wsgi, host)

    def shut_down() -> None:
        try:
            host.shutdown()
        finally:
            worker.alive = False  # gunicorn's run loop ends the worker

    def on_signal(signum: int) -> None:
        if not host.shutting_down:
            worker.log.info("worker %s: shutting down its streams", worker.pid)
            gevent.spawn(shut_down)

    ShutdownSignals(on_signal, grace).install()


def _hosted(app: WSGIApplication, host: Host) -> WSGIApplication:
    """``app``, with ``host`` in every request's environ."""

    def hosted(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        environ.setdefault(HOST_KEY, host.view)
        return app(environ, start_response)

    return hosted
