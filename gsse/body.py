"""The client errors of a request body: ``400``, ``408``, ``413``.

A broken chunked body, a connection that ends inside a body, a client that
sends it too slowly or too much of it: each is the client's fault, so the
app sees one of these instead of a bare ``OSError`` or ``ValueError`` (which
it would answer with ``500`` and a traceback). They are werkzeug
``HTTPException``\\ s, so Flask and :class:`gsse.App` answer them with their
status; gsse's connection (:mod:`gsse.http.connection`) answers them when a
plain WSGI app lets them through, and closes the connection, since what
follows a broken body cannot be trusted to be a request. The body itself
is read by :mod:`gsse.http.body`.
"""

from __future__ import annotations

from collections.abc import Iterator

from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.exceptions import RequestTimeout

__all__ = ["BadBody", "BodyError", "BodyTimeout", "BodyTooLarge", "LineReader"]


class BadBody(BadRequest):
    """The body is malformed (a bad chunk) or the connection ended inside it."""

    #: What exactly went wrong (logged, escaped; not sent to the client).
    detail = ""


class BodyTimeout(RequestTimeout):
    """The client sent its body too slowly."""


class BodyTooLarge(RequestEntityTooLarge):
    """The body is larger than ``max_body_size``."""


BodyError = (BadBody, BodyTimeout, BodyTooLarge)


class LineReader:
    """``readlines`` and line iteration for a ``wsgi.input`` over ``readline``."""

    def readline(self, size: int | None = -1) -> bytes:
        raise NotImplementedError

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
