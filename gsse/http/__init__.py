"""gsse's own HTTP/1.1 connection layer, on gevent's ``StreamServer``.

Requests are parsed by httptools (the binding of Node's llhttp that uvicorn
uses: strict, fast, kept up to date) plus the checks of
:mod:`gsse.framing` where llhttp is lenient; bodies are read lazily and
within :class:`~gsse.limits.Limits`; responses are framed per RFC 9112;
a response whose body is an :class:`~gsse.stream.SSEBody` takes the fast
path: head and first chunk in one send, then the socket is the stream's.

- :mod:`gsse.http.parser`: a request head, parsed and checked;
- :mod:`gsse.http.reader`: the connection's socket and read buffer;
- :mod:`gsse.http.body`: ``wsgi.input``;
- :mod:`gsse.http.environ`: the PEP 3333 environ;
- :mod:`gsse.http.response`: ``start_response``, ``write`` and framing;
- :mod:`gsse.http.connection`: one connection's request loop;
- :mod:`gsse.http.server`: the ``StreamServer`` that runs it.
"""

from __future__ import annotations
