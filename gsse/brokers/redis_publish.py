"""The Redis broker's publish: the scripts, retried while Redis is away.

One publish or many (:meth:`~gsse.brokers.redis.RedisBroker.publish_many`,
one pipeline): each event carries a random token that the script
remembers while a retry may come, so a retried publish whose reply was
lost never adds its event twice. Past ``publish_timeout`` it raises
:class:`gsse.BrokerUnavailable`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING
from typing import Any

from ..exceptions import BrokerUnavailable
from ..metrics import STATS
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import UNAVAILABLE

if TYPE_CHECKING:
    from .redis import RedisBroker

logger = logging.getLogger("gsse.brokers.redis")

#: Seconds a command may wait for its reply.
REPLY_TIMEOUT = 5.0


def publish_encoded(
    broker: RedisBroker,
    items: list[tuple[str, bytes]],
    what: str,
    return_delivery: bool = False,
) -> list[Any]:
    """Run the publish script for each item, retrying while Redis is away.

    :param return_delivery: one item only: its ``(id, streams reached)``.
    """
    tokens = [
        f"{broker._prefix}:published:{os.urandom(12).hex()}".encode() for _ in items
    ]
    report = tokens[0] + b":delivered" if return_delivery else None
    deadline = time.monotonic() + broker.publish_timeout
    # The token must outlive every retry (each may wait for its reply).
    lifetime = int(broker.publish_timeout + 2 * REPLY_TIMEOUT) + 1
    delay = BACKOFF_FIRST / 2
    first = True
    while True:
        try:
            if len(items) == 1:
                (channel, raw), token = items[0], tokens[0]
                replies = [broker._run_publish(channel, raw, token, lifetime, report)]
            else:
                pipe = broker._client.pipeline(transaction=False)
                for (channel, raw), token in zip(items, tokens, strict=True):
                    broker._run_publish(channel, raw, token, lifetime, client=pipe)
                replies = pipe.execute()
            ids = [r.decode() if isinstance(r, bytes) else str(r) for r in replies]
            if report is None:
                return ids
            return [(ids[0], broker._delivery(items[0][0], report, deadline))]
        except UNAVAILABLE as exc:
            STATS.broker_errors += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.error(
                    "publishing to channel %s failed: Redis at %s did not"
                    " answer for %.1f s (%s)",
                    what,
                    broker.where,
                    broker.publish_timeout,
                    exc,
                )
                raise BrokerUnavailable(
                    f"Redis at {broker.where} did not answer for"
                    f" {broker.publish_timeout:g} s ({exc}); the event to channel"
                    f" {what} was not published. Check that Redis is up"
                    " and reachable, then publish again."
                ) from None
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "publishing to channel %s: Redis at %s is unreachable (%s);"
                " retrying for up to %.1f s",
                what,
                broker.where,
                exc,
                remaining,
            )
            first = False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, BACKOFF_MAX / 4)
