"""Read a stream with werkzeug's test client, in a program gevent never patched.

Usage: python -m tests.apps.inprocess_client PATH  (prints status and body)
"""

import sys

from werkzeug.test import Client

from tests.apps.flask_hosts import app

if __name__ == "__main__":
    response = Client(app).get(sys.argv[1])
    print(response.status_code)
    print(response.get_data(as_text=True), end="")
