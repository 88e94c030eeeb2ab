"""The PEP 3333 environ of a request, as pywsgi and gunicorn build it.

Header values are latin-1 text, exactly the bytes received; ``PATH_INFO``
is the path percent-decoded as latin-1 (``urllib.parse.unquote(path,
encoding="latin-1")``, which is what pywsgi does and what gunicorn's
``unquote_to_wsgi_str`` gives), ``SCRIPT_NAME`` is empty,
``QUERY_STRING`` is left encoded. Repeated fields are joined with ``,``
(``Cookie`` with ``"; "``), and names with ``_`` are dropped so that they
cannot pose as ones with ``-`` (gunicorn does the same).
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote
from wsgiref.util import FileWrapper

import gevent

from .._version import __version__
from .parser import Head

__all__ = ["base_environ", "request_environ"]

SERVER_SOFTWARE = "gsse/{} gevent/{}.{} Python/{}.{}".format(
    __version__, *gevent.version_info[:2], *sys.version_info[:2]
)


def base_environ(
    server_name: str, server_port: str, errors: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    """The keys every request of one server shares."""
    environ: dict[str, Any] = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SCRIPT_NAME": "",
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": errors,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
    environ.update(extra)
    return environ


def request_environ(
    base: dict[str, Any], head: Head, client: Any, body: Any
) -> dict[str, Any]:
    """The environ of the request ``head`` from ``client``, reading ``body``."""
    environ = base.copy()
    environ["REQUEST_METHOD"] = head.method
    path = head.path
    environ["PATH_INFO"] = unquote(path, encoding="latin-1") if "%" in path else path
    environ["QUERY_STRING"] = head.query
    environ["SERVER_PROTOCOL"] = head.version
    if isinstance(client, tuple):
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    environ["wsgi.input"] = body
    for name, value in head.fields:
        key = name.upper().replace("-", "_")
        if "_" in name:
            continue
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            if value or key == "CONTENT_TYPE":
                environ[key] = value
            continue
        key = "HTTP_" + key
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    if head.authority is not None:
        # RFC 9112 §3.2.2: the target's authority, not the Host field.
        environ["HTTP_HOST"] = head.authority
    return environ
