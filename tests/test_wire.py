"""The event-stream encoder: exact bytes, validation, and round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsse.wire import EventStreamDecoder
from gsse.wire import Message
from gsse.wire import encode_comment
from gsse.wire import encode_event
from gsse.wire import encode_retry

from .vectors import EncodeCase
from .vectors import ParseCase
from .vectors import encode_cases
from .vectors import parse_cases


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # Cases JSON can carry live in tests/vectors/encode.json.
        ({"data": b"caf\xc3\xa9"}, "data: caf\u00e9\n\n".encode()),
        ({"data": bytearray(b"x")}, b"data: x\n\n"),
    ],
)
def test_encode_event_exact_bytes(kwargs: dict[str, object], expected: bytes) -> None:
    """Each kind of send_event call produces exactly the expected bytes."""
    assert encode_event(**kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("case", encode_cases(), ids=lambda case: case.name)
def test_encoder_vectors(case: EncodeCase) -> None:
    """The shared vectors: exact bytes, and a spec parser reads them back."""
    raw = encode_event(**case.kwargs)
    assert raw == case.raw
    assert EventStreamDecoder().feed(raw) == case.messages


@pytest.mark.parametrize("case", parse_cases(), ids=lambda case: case.name)
def test_decoder_vectors(case: ParseCase) -> None:
    """The shared parsing vectors, fed whole (tests/test_client.py splits them)."""
    assert EventStreamDecoder().feed(case.raw) == case.messages


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"data": "x", "event": "a\nb"}, ValueError, "event must not contain CR or LF"),
        ({"data": "x", "event": "a\rb"}, ValueError, "event must not contain CR or LF"),
        ({"data": "x", "id": "1\n"}, ValueError, "id must not contain CR or LF"),
        ({"data": "x", "id": "1\0"}, ValueError, "id must not contain NUL"),
        ({"data": "x", "retry": -1}, ValueError, "retry must be >= 0"),
        ({"data": "x", "retry": 1.5}, TypeError, "retry must be an int"),
        ({"data": "x", "retry": "10"}, TypeError, "retry must be an int"),
        ({"data": "x", "retry": True}, TypeError, "retry must be an int"),
        ({"data": "x", "event": 5}, TypeError, "event must be a str"),
        ({"data": object()}, TypeError, "cannot be sent"),
        ({"data": b"\xff"}, ValueError, "not valid UTF-8"),
        ({"data": "\ud800"}, ValueError, "not valid Unicode"),
        ({}, ValueError, "needs something to send"),
    ],
)
def test_encode_event_rejects_bad_fields(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Bad fields raise with a message saying what to fix."""
    with pytest.raises(error, match=message):
        encode_event(**kwargs)  # type: ignore[arg-type]


def test_comment_and_retry_frames() -> None:
    """Comments become ': ' lines; retry-only frames carry just the field."""
    assert encode_comment() == b":\n\n"
    assert encode_comment("keep") == b": keep\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"
    assert encode_retry(3000) == b"retry: 3000\n\n"
    with pytest.raises(TypeError):
        encode_comment(5)  # type: ignore[arg-type]


def test_wire_knows_nothing_of_http() -> None:
    """The SSE format module has no HTTP chunk framing (that is gsse.chunked)."""
    import gsse.wire

    assert not hasattr(gsse.wire, "chunk")
    assert "chunk" not in gsse.wire.__all__


def _decode_all(raw: bytes) -> list[Message]:
    return EventStreamDecoder().feed(raw)


# Text with every kind of line break and other awkward characters.
awkward_text = st.text(
    alphabet=st.sampled_from(["a", " ", ":", "\n", "\r", "\0", "\u2028", "é", "\ufeff"])
    | st.characters(blacklist_categories=("Cs",)),
    max_size=40,
)
field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
    max_size=20,
)


@given(
    data=awkward_text,
    event=st.none() | field_text.filter(bool),
    id=st.none() | field_text,
)
def test_any_text_round_trips(data: str, event: str | None, id: str | None) -> None:
    """What the encoder writes, a spec-exact parser reads back unchanged."""
    raw = encode_event(data, event=event, id=id)
    messages = _decode_all(raw)
    normalized = data.replace("\r\n", "\n").replace("\r", "\n")
    assert messages == [Message(normalized, event or "message", id or "", None)]


@given(data=awkward_text, event=st.none() | field_text, id=st.none() | field_text)
def test_no_input_adds_a_line_or_field(
    data: str, event: str | None, id: str | None
) -> None:
    """Every line an encoded event has is one of its own fields, and it ends once."""
    raw = encode_event(data, event=event, id=id).decode()
    assert raw.endswith("\n\n")
    body = raw[:-2]
    assert "\n\n" not in body.replace("\r", "")
    lines = body.split("\n")
    assert all(line.split(":", 1)[0] in {"data", "event", "id"} for line in lines)
    assert sum(line.startswith("event:") for line in lines) == (event is not None)
    assert sum(line.startswith("id:") for line in lines) == (id is not None)
    assert "\r" not in body


@given(text=awkward_text)
def test_comments_never_dispatch(text: str) -> None:
    """A comment, whatever its text, never becomes an event."""
    assert _decode_all(encode_comment(text)) == []
    assert _decode_all(encode_comment(text) + encode_event("x")) == [Message("x")]


@given(
    values=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    ).filter(lambda v: v is not None and not isinstance(v, str))
)
def test_json_data_round_trips(values: object) -> None:
    """Non-text data arrives as one line of JSON that parses back to it."""
    [message] = _decode_all(encode_event(values))
    assert json.loads(message.data) == values
    assert "\n" not in message.data
