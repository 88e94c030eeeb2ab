"""Serve tests.apps.flask_hosts with a server that is not gevent's.

Usage: python -m tests.apps.threaded_host (wsgiref|werkzeug) PORT

wsgiref serves one request at a time; werkzeug's dev server (what
``flask run`` uses) a thread per request. Neither is monkey-patched.
"""

import logging
import sys
from wsgiref.simple_server import make_server

from werkzeug.serving import run_simple

from tests.apps.flask_hosts import app

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    kind, port = sys.argv[1], int(sys.argv[2])
    logging.info("%s serving on http://127.0.0.1:%d", kind, port)
    if kind == "wsgiref":
        with make_server("127.0.0.1", port, app) as server:
            server.serve_forever()
    else:
        run_simple("127.0.0.1", port, app, threaded=True)
