"""The arguments of :class:`gsse.Runs`, checked before anything is made."""

from __future__ import annotations

from typing import Any

from ..brokers import Broker
from ..host import Host
from .heartbeat import HEARTBEAT


def check_arguments(broker: Any, ttl: Any, lease: Any, host: Any) -> None:
    """Raise ``TypeError``/``ValueError`` saying what to fix, for a bad argument."""
    if not isinstance(broker, Broker):
        raise TypeError(
            "Runs needs a gsse.Broker, e.g. gsse.Runs(gsse.Broker.from_url()),"
            f" not {type(broker).__name__}"
        )
    for name, value in (("ttl", ttl), ("lease", lease)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number of seconds, got {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be more than 0 seconds, got {value!r}")
    if lease <= 2 * HEARTBEAT:
        raise ValueError(
            f"lease must be more than {2 * HEARTBEAT} s (two heartbeats), got {lease!r}"
        )
    if host is not None and not isinstance(host, Host):
        raise TypeError(
            f"host must be a gsse.host.Host (or None), not {type(host).__name__}"
        )
    if getattr(broker, "hash_tags", False):
        raise ValueError(
            "gsse.Runs does not support redis+cluster:// yet: use redis://"
            " or redis+sentinel:// for runs"
        )
