"""Serve tests.apps.flask_hosts with a plain gevent.pywsgi.WSGIServer.

Usage: python -m tests.apps.pywsgi_host PORT
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from tests.apps.flask_hosts import app  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    port = int(sys.argv[1])
    logging.info("pywsgi serving on http://127.0.0.1:%d", port)
    WSGIServer(("127.0.0.1", port), app).serve_forever()
