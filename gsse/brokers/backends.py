"""The brokers :meth:`gsse.Broker.from_url` builds, by URL scheme.

Importing :mod:`gsse.brokers` imports this module, which registers each
scheme with :func:`~gsse.brokers.base.register_backend`; ``base`` itself
knows no backend, so the backends can import it without a cycle.
"""

from __future__ import annotations

from typing import Any

from .base import Broker
from .base import register_backend
from .memory import MemoryBroker


def memory_backend(url: str, options: dict[str, Any]) -> Broker:
    """``memory://``: one process; takes every history bound as a keyword."""
    return MemoryBroker(**options)


def redis_backend(url: str, options: dict[str, Any]) -> Broker:
    """``redis://``, ``rediss://``, ``unix://``: many processes and machines."""
    # Only now: ``redis`` is optional, and ``import gsse`` must stay safe
    # before ``monkey.patch_all()``.
    from .redis import RedisBroker

    extra = sorted(set(options) - {"history", "history_ttl"})
    if extra:
        raise TypeError(
            f"redis:// brokers take no {', '.join(extra)} option: Redis"
            " bounds history per channel (history=, history_ttl=) and by its"
            " maxmemory"
        )
    return RedisBroker(
        url,
        history=options.get("history", 1000),
        history_ttl=options.get("history_ttl"),
    )


register_backend("memory", memory_backend)
for _scheme in ("redis", "rediss", "unix"):
    register_backend(_scheme, redis_backend)
