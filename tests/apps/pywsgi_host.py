"""Serve tests.apps.flask_hosts with the gevent.pywsgi script of docs/flask.md.

The script is taken from the page as written (its ``from app import app``
and port 8000 swapped for the test's), so the documented graceful shutdown
is the one tested. Usage: python -m tests.apps.pywsgi_host PORT
"""

import logging
import re
import sys
import textwrap
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "flask.md"


def documented_script() -> str:
    """The gevent.pywsgi tab's script of docs/flask.md."""
    page = PAGE.read_text(encoding="utf-8")
    match = re.search(r'=== "gevent.pywsgi"\n\n    ```python\n(.*?)    ```', page, re.S)
    assert match, "docs/flask.md lost its gevent.pywsgi script"
    return textwrap.dedent(match.group(1))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    port = sys.argv[1]
    script = documented_script()
    assert "from app import app" in script and "8000" in script
    script = script.replace(
        "from app import app", "from tests.apps.flask_hosts import app"
    )
    script = script.replace("8000", port)
    logging.info("pywsgi serving on http://127.0.0.1:%s", port)
    exec(compile(script, str(PAGE), "exec"), {"__name__": "__main__"})
