"""Errors users catch: each subclasses the built-in error they already expect."""

from __future__ import annotations


class ClientDisconnected(ConnectionError):
    """The stream has ended: the client went away, or the stream was closed.

    A ``while True`` loop that sends events ends by itself when this is raised;
    the server treats it as a normal end of stream, not as an error.

    .. versionadded:: 0.1
    """


class BrokerUnavailable(ConnectionError):
    """The broker's backend (e.g. Redis) could not be reached in time.

    .. versionadded:: 0.1
    """


class AppImportError(ImportError):
    """``module:app`` could not be loaded; the message says what to fix.

    .. versionadded:: 0.1
    """
