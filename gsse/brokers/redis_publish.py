"""A Redis publish retried while Redis is away, for ``publish_timeout`` seconds.

Each attempt runs the publish script with the same token (lua.py), so an
attempt whose reply was lost never adds the event twice; once time runs
out, :class:`gsse.BrokerUnavailable` says what to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..exceptions import BrokerUnavailable
from ..metrics import STATS
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import UNAVAILABLE

#: The Redis broker's logger: operators filter on one name for publishing.
logger = logging.getLogger("gsse.brokers.redis")


def retry_publish(
    attempt: Callable[[], Any], channel: str, where: str, publish_timeout: float
) -> str:
    """The new event's id from ``attempt()``, retried until ``publish_timeout``.

    :raises gsse.BrokerUnavailable: Redis did not answer in time.
    """
    deadline = time.monotonic() + publish_timeout
    delay = BACKOFF_FIRST / 2
    first = True
    while True:
        try:
            new_id = attempt()
            return new_id.decode() if isinstance(new_id, bytes) else str(new_id)
        except UNAVAILABLE as exc:
            STATS.broker_errors += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.error(
                    "publishing to channel %r failed: Redis at %s did not"
                    " answer for %.1f s (%s)",
                    channel,
                    where,
                    publish_timeout,
                    exc,
                )
                raise BrokerUnavailable(
                    f"Redis at {where} did not answer for"
                    f" {publish_timeout:g} s ({exc}); the event to channel"
                    f" {channel!r} was not published. Check that Redis is up"
                    " and reachable, then publish again."
                ) from None
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "publishing to channel %r: Redis at %s is unreachable (%s);"
                " retrying for up to %.1f s",
                channel,
                where,
                exc,
                remaining,
            )
            first = False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, BACKOFF_MAX / 4)
