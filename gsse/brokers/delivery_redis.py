"""Delivery counts on Redis: ``publish(..., return_delivery=True)``.

A counted publish adds a field ``d`` to its Stream entry: the name of a
short-lived list, ``<prefix>:delivered:<token>``. Every process whose reader
reads the entry hands it to its streams, then pushes ``"<process> <n>"``
onto that list (:class:`DeliveryReports`, one pipeline per batch it read).
The publisher asks the count hash of the channel which live processes have
streams on it (presence_lua.py ``COUNTS``), adds itself when it follows the
channel, and waits (``BLPOP``) until each of them has reported, or
``publish_timeout`` has passed: so ``n`` is exact when every process
answers in time, and a lower bound when one is slow. A process that lost
its last stream meanwhile is dropped from the wait when the count hash is
read again, every :data:`RECHECK` seconds.

Uncounted publishes cost nothing more: no field, no report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import redis

from .fanout import Subscription
from .frames import Frame
from .presence import delivered

#: Seconds between re-reads of which processes still have to report.
RECHECK = 0.2


class DeliveryReports:
    """The reader's side: how many streams each counted event reached here."""

    def __init__(self, client: redis.Redis, proc: Callable[[], str], lifetime: int):
        self._client = client
        self._proc = proc
        self._lifetime = lifetime
        self._reports: list[tuple[bytes, int]] = []

    def handed(
        self, report: bytes, subscribers: Iterable[Subscription], frame: Frame
    ) -> None:
        """Note that ``frame`` (with ``d`` = ``report``) went to ``subscribers``."""
        self._reports.append((report, delivered(subscribers, frame)))

    def flush(self) -> None:
        """Send the noted counts (one round trip); a failure only lowers them."""
        reports, self._reports = self._reports, []
        if not reports:
            return
        proc = self._proc()
        pipe = self._client.pipeline(transaction=False)
        for key, count in reports:
            pipe.rpush(key, f"{proc} {count}")
            pipe.expire(key, self._lifetime)
        try:
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # the publisher's count is a lower bound; it stops waiting


def wait_delivery(
    client: redis.Redis,
    report: bytes,
    expected: Callable[[], set[str]],
    timeout: float,
) -> int:
    """The streams the processes in ``expected()`` reported within ``timeout``."""
    deadline = time.monotonic() + timeout
    waiting = expected()
    reported: set[str] = set()
    total = 0
    while True:
        if not waiting:
            # Late or unexpected reporters that are already there count too.
            replies: Any = client.lpop(report, 1000)
            for reply in replies or ():
                total += _count(reply, reported)
            return total
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return total
        popped: Any = client.blpop([report], timeout=min(remaining, RECHECK))
        if popped is None:
            waiting = expected() - reported
            continue
        total += _count(popped[1], reported)
        waiting -= reported


def _count(reply: bytes, reported: set[str]) -> int:
    proc, _, count = reply.decode().partition(" ")
    reported.add(proc)
    return int(count)
