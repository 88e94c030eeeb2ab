"""A gsse server with ``handlers="threads"`` for the lazy-body memory tests.

Usage: python -m tests.apps.pool_host

Serves on a free port and logs ``pool_host serving tests.apps.pool_host on
http://127.0.0.1:PORT`` (what :mod:`tests.procs` waits for). The body limit
is set explicitly large, so that the tests measure reading, not refusing.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from typing import Any  # noqa: E402

from gsse import Server  # noqa: E402

CHUNK = 64 * 1024


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``/count`` reads the body in chunks and answers its length; else 404."""
    if environ["PATH_INFO"] != "/count":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    total = 0
    body = environ["wsgi.input"]
    while chunk := body.read(CHUNK):
        total += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(total).encode()]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    server = Server(app, "127.0.0.1", 0, handlers="threads", max_body_size=1 << 40)
    server.start()
    logging.info("pool_host serving tests.apps.pool_host on %s", server.url)
    server.serve_forever()
