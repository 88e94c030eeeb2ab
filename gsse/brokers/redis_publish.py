"""A Redis publish retried while Redis is away, for ``publish_timeout`` seconds.

One event (:meth:`~gsse.brokers.redis.RedisBroker.publish`) or many in one
pipeline (:meth:`~gsse.brokers.redis.RedisBroker.publish_many`): each
event carries a token that the publish script remembers while a retry may
come (lua.py), so an attempt whose reply was lost never adds its event
twice; once time runs out, :class:`gsse.BrokerUnavailable` says what to
check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from ..exceptions import BrokerUnavailable
from ..metrics import STATS
from .redis_reader import BACKOFF_FIRST
from .redis_reader import BACKOFF_MAX
from .redis_reader import UNAVAILABLE

if TYPE_CHECKING:
    from .redis import RedisBroker

#: The Redis broker's logger: operators filter on one name for publishing.
logger = logging.getLogger("gsse.brokers.redis")

T = TypeVar("T")


def reply_text(reply: Any) -> str:
    """An event id as the publish script returns it, as text."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def retry_publish(
    attempt: Callable[[], T], what: str, where: str, publish_timeout: float
) -> T:
    """``attempt()``'s result, retried while Redis is away, up to ``publish_timeout``.

    :param what: the channel(s), as log lines and the error name them.
    :raises gsse.BrokerUnavailable: Redis did not answer in time.
    """
    deadline = time.monotonic() + publish_timeout
    delay = BACKOFF_FIRST / 2
    first = True
    while True:
        try:
            return attempt()
        except UNAVAILABLE as exc:
            STATS.broker_errors += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.error(
                    "publishing to channel %s failed: Redis at %s did not"
                    " answer for %.1f s (%s)",
                    what,
                    where,
                    publish_timeout,
                    exc,
                )
                raise BrokerUnavailable(
                    f"Redis at {where} did not answer for"
                    f" {publish_timeout:g} s ({exc}); the event to channel"
                    f" {what} was not published. Check that Redis is up"
                    " and reachable, then publish again."
                ) from None
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "publishing to channel %s: Redis at %s is unreachable (%s);"
                " retrying for up to %.1f s",
                what,
                where,
                exc,
                remaining,
            )
            first = False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, BACKOFF_MAX / 4)


def publish_pipelined(
    broker: RedisBroker, items: list[tuple[str, bytes]], lifetime: int
) -> list[str]:
    """Publish encoded ``(channel, raw)`` items in order, in one pipeline.

    Each item is one run of the broker's publish script with a token of its
    own (``KeyNames.token``, in its channel's slot), so a retry of the whole
    pipeline adds none of them twice. For one Redis (and Sentinel's
    primary): a Cluster's items may live on different shards.
    """
    tokens = [broker._keys.token(channel) for channel, _ in items]

    def attempt() -> list[str]:
        pipe = broker._client.pipeline(transaction=False)
        for (channel, raw), token in zip(items, tokens, strict=True):
            broker._run_publish(channel, raw, token, lifetime, client=pipe)
        return [reply_text(reply) for reply in pipe.execute()]

    what = f"{len(items)} events"
    return retry_publish(attempt, what, broker.where, broker.publish_timeout)
