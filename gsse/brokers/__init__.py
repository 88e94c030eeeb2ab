"""Channels, replay and scale-out: ``memory://`` and ``redis://`` brokers.

See :class:`gsse.Broker` and docs/channels.md. ``redis`` is imported only by
:mod:`gsse.brokers.redis`, when a ``redis://`` URL is used.
"""

from . import backends  # noqa: F401  (registers memory:// and redis:// URLs)
from .base import Broker as Broker

__all__ = ["Broker"]
