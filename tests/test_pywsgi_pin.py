"""gsse's use of pywsgi internals stays in one module, checked against gevent.

``gsse/pywsgi_glue.py`` lists every private pywsgi name it relies on and the
gevent versions it was checked against; these tests read those lists, so the
lists, the installed gevent and ``pyproject.toml`` cannot drift apart.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import gevent
import gevent.pywsgi
from packaging.version import Version

from gsse import pywsgi_glue
from gsse.pywsgi_glue import CHECKED_GEVENT
from gsse.pywsgi_glue import HANDLER_ATTRIBUTES
from gsse.pywsgi_glue import PRIVATE_NAMES
from gsse.pywsgi_glue import PywsgiHandler

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gsse"


def test_installed_gevent_is_in_the_checked_range() -> None:
    """The gevent in use is one the glue module was checked against."""
    low, below = (Version(v) for v in CHECKED_GEVENT)
    installed = Version(gevent.__version__)
    assert low <= installed < below, (
        f"gevent {installed} is outside {CHECKED_GEVENT}: re-check"
        " gsse/pywsgi_glue.py against it, then widen CHECKED_GEVENT"
    )


def test_pyproject_caps_gevent_at_the_checked_range() -> None:
    """pyproject.toml's gevent requirement is exactly the checked range."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    specs = re.findall(r'"gevent([<>=!~][^"]*)"', text)
    low, below = CHECKED_GEVENT
    assert specs == [f">={low},<{below}"]


def test_every_private_name_exists_in_gevent() -> None:
    """Each private pywsgi name the glue overrides or reads is still there."""
    missing = [
        f"{cls}.{name}"
        for cls, names in PRIVATE_NAMES.items()
        for name in names
        if not hasattr(getattr(gevent.pywsgi, cls), name)
    ]
    assert not missing, f"gevent {gevent.__version__} lacks {missing}"
    assert hasattr(gevent.pywsgi, "_InvalidClientInput")
    assert hasattr(gevent.pywsgi, "OldMessage")


def test_every_private_method_override_has_a_pywsgi_target() -> None:
    """The glue's private overrides are exactly methods pywsgi still has."""
    overridden = {
        name
        for name in vars(PywsgiHandler)
        if name.startswith("_") and not name.startswith("__")
    }
    assert overridden <= set(PRIVATE_NAMES["WSGIHandler"])
    for name in overridden:
        assert callable(getattr(gevent.pywsgi.WSGIHandler, name)), name


def test_no_other_module_touches_pywsgi_private_names() -> None:
    """Outside the glue, gsse names no private pywsgi method or attribute."""
    private = {
        name
        for names in PRIVATE_NAMES.values()
        for name in names
        if name.startswith("_")
    }
    private |= {"_InvalidClientInput", "OldMessage", "_sendall"}
    public_names = {"WSGIServer", "WSGIHandler"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "pywsgi_glue.py":
            continue
        text = path.read_text(encoding="utf-8")
        for imported in re.findall(r"from gevent\.pywsgi import (\w+)", text):
            if imported not in public_names:
                offenders.append(f"{path.name} imports {imported}")
        if "pywsgi_glue" not in text and "gevent.pywsgi" not in text:
            continue  # not a pywsgi subclass: its own _names are its own
        for name in private:
            if re.search(rf"\b{re.escape(name)}\b", text):
                offenders.append(f"{path.name} names {name}")
    assert not offenders


def test_handler_attributes_exist_on_a_served_request() -> None:
    """The undocumented handler attributes gsse reads exist mid-request."""
    seen: dict[str, bool] = {}

    class Recording(PywsgiHandler):
        def log_request(self) -> None:
            for name in HANDLER_ATTRIBUTES:
                seen[name] = hasattr(self, name)
            super().log_request()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = gevent.pywsgi.WSGIServer(
        ("127.0.0.1", 0), app, handler_class=Recording, log=None
    )
    server.start()
    try:
        with socket.create_connection(server.address, timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            for _ in range(100):
                piece = client.recv(4096)
                if not piece:
                    break
                data += piece
    finally:
        server.stop(timeout=5)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")
    assert seen == {name: True for name in HANDLER_ATTRIBUTES}


def test_glue_module_lists_every_private_name_in_its_docstring() -> None:
    """The module docstring names each private name it relies on."""
    doc = pywsgi_glue.__doc__ or ""
    for names in PRIVATE_NAMES.values():
        for name in names:
            assert name in doc, name
