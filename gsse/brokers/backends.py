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
from .presence import check_presence_ttl


def memory_backend(url: str, options: dict[str, Any]) -> Broker:
    """``memory://``: one process; takes every history bound as a keyword.

    ``presence_ttl`` is checked and ignored: nothing outlives the process.
    """
    if "presence_ttl" in options:
        check_presence_ttl(options.pop("presence_ttl"))
    return MemoryBroker(**options)


def redis_backend(url: str, options: dict[str, Any]) -> Broker:
    """``redis://``, ``rediss://``, ``unix://``: many processes and machines."""
    # Only now: ``redis`` is optional, and ``import gsse`` must stay safe
    # before ``monkey.patch_all()``.
    from .redis import RedisBroker

    extra = sorted(set(options) - {"history", "presence_ttl"})
    if extra:
        raise TypeError(
            f"redis:// brokers take no {', '.join(extra)} option: Redis"
            " bounds history per channel (history=) and by its maxmemory"
        )
    return RedisBroker(url, **options)


register_backend("memory", memory_backend)
for _scheme in ("redis", "rediss", "unix"):
    register_backend(_scheme, redis_backend)
