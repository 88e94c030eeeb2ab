"""Shared event-stream test vectors: one data file, read by every side.

``parse.json``: raw bodies and the messages the HTML spec's parser
dispatches from them. ``encode.json``: ``send_event`` arguments, the exact
bytes they put on the wire, and the messages a client reads back. The
encoder, the client and the browser cross-check all use these, so what the
server writes and what a client reads can never disagree unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsse.wire import Message

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ParseCase:
    name: str
    raw: bytes
    messages: list[Message]


@dataclass(frozen=True)
class EncodeCase:
    name: str
    kwargs: dict[str, Any]
    raw: bytes
    messages: list[Message]


def _messages(items: list[dict[str, Any]]) -> list[Message]:
    return [Message(m["data"], m["event"], m["id"], m["retry"]) for m in items]


def parse_cases() -> list[ParseCase]:
    """Every case of ``parse.json``."""
    cases = json.loads((HERE / "parse.json").read_text("utf-8"))["cases"]
    return [
        ParseCase(
            c["name"],
            bytes.fromhex(c["raw_hex"]) if "raw_hex" in c else c["raw"].encode(),
            _messages(c["messages"]),
        )
        for c in cases
    ]


def encode_cases() -> list[EncodeCase]:
    """Every case of ``encode.json``."""
    cases = json.loads((HERE / "encode.json").read_text("utf-8"))["cases"]
    return [
        EncodeCase(
            c["name"], c["kwargs"], c["bytes"].encode(), _messages(c["messages"])
        )
        for c in cases
    ]


def as_dict(message: Message) -> dict[str, Any]:
    """A message as the JSON object the vectors and the browser use."""
    return {
        "data": message.data,
        "event": message.event,
        "id": message.id,
        "retry": message.retry,
    }
