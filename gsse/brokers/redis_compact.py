"""Compacted channels and history by age on Redis: keys, arguments, replies.

The scripts are in lua_compact.py; this module names the Redis keys a
channel uses and turns the scripts' replies into frames, so that
redis.py only chooses which script to run.
"""

from __future__ import annotations

from typing import Any

from .fanout import ChannelState
from .frames import Frame
from .redis_reader import entry_frame
from .redis_reader import entry_key
from .redis_topology import KeyNames


def ttl_ms(history_ttl: float | None) -> int:
    """``history_ttl`` as the scripts take it: milliseconds, ``0`` for none."""
    return 0 if history_ttl is None else max(1, int(history_ttl * 1000))


def keyed_keys(keys: KeyNames, channel: str) -> tuple[bytes, bytes]:
    """The compacted state's hash and its key-age sorted set for ``channel``.

    Named by :class:`KeyNames`, so on a Cluster they share the channel's slot.
    """
    return keys.key("keys", channel), keys.key("keyage", channel)


def snapshot_frames(channel: str, flat: list[bytes]) -> list[Frame]:
    """``key, "id event", ...`` from the hash as frames, in publish order."""
    frames = []
    for i in range(0, len(flat), 2):
        entry_id, _, raw = flat[i + 1].partition(b" ")
        frames.append(
            Frame(channel, entry_key(entry_id), raw, flat[i].decode(errors="replace"))
        )
    frames.sort(key=_by_key)
    return frames


def _by_key(frame: Frame) -> tuple[int, int]:
    return frame.key


def channel_state(channel: str, reply: Any) -> ChannelState:
    """The reply of ``STATE_KEYED`` as a :class:`ChannelState`."""
    last, entries, flat = reply
    frames = None
    if entries is not None:
        frames = [entry_frame(channel, eid, fields) for eid, fields in entries]
    snapshot = snapshot_frames(channel, flat) if flat is not None else None
    return ChannelState(entry_key(last), frames, snapshot)
