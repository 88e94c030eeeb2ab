"""A WSGI app that answers with its environ as JSON, for the PEP 3333 test.

Text values are sent as they are (JSON escapes keep latin-1 exact); other
values as their type name, and ``wsgi.input`` also with the body read
from it, so that what a server hands an app can be compared key by key.

Serve it with: ``gsse run tests.apps.environ_dump:app``, ``python -m
tests.apps.environ_dump PORT`` (plain ``gevent.pywsgi``), or gunicorn.
"""

from __future__ import annotations

import json
from typing import Any


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    dump: dict[str, Any] = {}
    for key, value in environ.items():
        if isinstance(value, (str, bool)) or key == "wsgi.version":
            dump[key] = value
        else:
            dump[key] = type(value).__name__
    dump["wsgi.input:body"] = environ["wsgi.input"].read().decode("latin-1")
    data = json.dumps(dump, sort_keys=True).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


if __name__ == "__main__":
    import sys

    from gevent import monkey

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer

    WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None).serve_forever()
