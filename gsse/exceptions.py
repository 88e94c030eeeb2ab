"""Errors users catch, and why a stream ended.

Each error subclasses the built-in error users already expect.
:class:`CloseReason` is the one list of the ways a stream can end, shared by
:mod:`gsse.streams` (every stream ends with one), the access log that prints
why, and the metrics that count them.
"""

from __future__ import annotations

import enum

__all__ = ["AppImportError", "BrokerUnavailable", "ClientDisconnected", "CloseReason"]


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


class CloseReason(str, enum.Enum):
    """Why a stream ended: one member per way, never free text.

    The value (``"send_timeout"``) is the ``reason`` label of the metrics;
    :attr:`text` (and ``str()``) is what the access log prints;
    :attr:`cause` is the coarser ``cause`` label of
    ``gsse_disconnects_total``. A detail that varies (the exception's type,
    the system error) travels beside the member, never in it, so the set of
    label values stays finite.
    """

    text: str
    cause: str

    def __new__(cls, value: str, text: str, cause: str) -> CloseReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.text = text
        member.cause = cause
        return member

    #: The app closed it: ``writer.close()``, or leaving ``with writer:``.
    CLOSED_BY_APP = ("closed_by_app", "closed by the server", "server")
    #: The stream callback raised (or returned a coroutine or generator).
    CALLBACK_FAILED = (
        "callback_failed",
        "closed by the server: the callback failed",
        "server",
    )
    #: A graceful shutdown ended a stream with nothing to finish (a channel
    #: subscription), or one that opened while the server was stopping.
    SHUTDOWN = ("shutdown", "closed by the server: shutting down", "server")
    #: Still open when the shutdown's grace period ran out.
    SHUTDOWN_DEADLINE = (
        "shutdown_deadline",
        "closed by the server: the shutdown's grace period ran out",
        "server",
    )
    #: A channel lost events this stream had not read, a second time.
    CHANNEL_LOST = (
        "channel_lost",
        "closed by the server: channel history lost",
        "server",
    )
    #: The broker's backend went away while the stream caught up.
    BROKER_LOST = (
        "broker_lost",
        "closed by the server: the broker went away",
        "server",
    )
    #: The client hung up (or its host ended the response).
    CLIENT_GONE = ("client_gone", "the client went away", "client")
    #: Sending to the client failed (a reset, a broken pipe).
    SEND_FAILED = ("send_failed", "send failed", "client")
    #: The client read nothing for ``send_timeout`` seconds.
    SEND_TIMEOUT = (
        "send_timeout",
        "send timeout: the client stopped reading",
        "send_timeout",
    )
    #: Events piled up past what a channel stream may buffer.
    OVERFLOW = ("overflow", "buffer overflow", "overflow")
    #: A reason given as free text (code outside gsse); the text is the detail.
    OTHER = ("other", "closed", "other")

    def describe(self, detail: str = "") -> str:
        """The log's words for this reason, with ``detail`` if there is one."""
        return f"{self.text}: {detail}" if detail else self.text

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return format(self.text, spec)
