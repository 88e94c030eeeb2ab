"""No user data can add a field, an event or a header (property tests)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse.wire import EventStreamDecoder
from gsse.wire import encode_comment
from gsse.wire import encode_event
from tests.helpers import RawStream

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(120)

#: Text that likes line breaks, NULs, colons and non-ASCII.
hostile = st.lists(
    st.sampled_from(
        ["\r", "\n", "\r\n", "\0", ":", " ", "a", "data:", "id: ", "é", "\u2028"]
    )
    | st.characters(blacklist_categories=("Cs",)),
    max_size=20,
).map("".join)

_FIELD_LINE = re.compile(rb"^(event: [^\r\n]*|id: [^\r\n\0]*|retry: \d+|data:( .*)?)$")


def normalised(text: str) -> str:
    """What a browser's ``data`` is for ``text``: every line break becomes LF."""
    return re.sub(r"\r\n|\r", "\n", text)


def fields_of(block: bytes) -> list[bytes]:
    """The lines of one encoded event block, without its terminating blank line."""
    assert block.endswith(b"\n\n") and b"\r" not in block
    return block[:-2].split(b"\n")


@settings(max_examples=400, deadline=None)
@given(data=hostile, event=st.none() | hostile, id=st.none() | hostile)
def test_send_event_fields_cannot_be_forged(
    data: str, event: str | None, id: str | None
) -> None:
    """Either ValueError, or exactly one event whose fields are exactly ours."""
    try:
        block = encode_event(data, event=event, id=id)
    except ValueError:
        assert any(v is not None and (set(v) & {"\r", "\n"}) for v in (event, id)) or (
            id is not None and "\0" in id
        )
        return
    lines = fields_of(block)
    assert all(_FIELD_LINE.match(line) for line in lines), lines
    names = [line.split(b":", 1)[0] for line in lines]
    assert names.count(b"event") == (event is not None)
    assert names.count(b"id") == (id is not None)
    assert names.count(b"data") == len(re.split(r"\r\n|\r|\n", data))
    messages = EventStreamDecoder().feed(block)
    assert len(messages) == 1
    assert messages[0].data == normalised(data)
    assert messages[0].event == (event or "message")
    assert messages[0].id == (id or "")


@settings(max_examples=300, deadline=None)
@given(text=hostile)
def test_a_comment_stays_a_comment(text: str) -> None:
    """Whatever the text, a comment dispatches nothing and sets no field."""
    block = encode_comment(text)
    assert all(line.startswith(b":") for line in fields_of(block))
    decoder = EventStreamDecoder()
    assert decoder.feed(block) == []
    assert decoder.last_event_id == "" and decoder.retry is None


@pytest.fixture
def echo_server(serve: Serve) -> Iterator[Server]:
    """/echo streams the query's data, event, id and comment back as one event."""
    app = App()

    @app.route("/echo")
    def echo(event: Event) -> None:
        args = event.request.args
        event.start_sse(headers={"X-Echo": args.get("header", "")})

        def send(writer: SSEWriter) -> None:
            with writer:
                writer.comment(args.get("comment", ""))
                try:
                    writer.send_event(
                        args["data"], event=args.get("event"), id=args.get("id")
                    )
                except ValueError:
                    writer.send_event("refused", event="refused")
                writer.send_event("end", event="end")

        event.set_stream_callback(send)

    yield serve(app)


_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _query(**values: str | None) -> str:
    return urllib.parse.urlencode({k: v for k, v in values.items() if v is not None})


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=hostile,
    event=st.none() | hostile,
    id=st.none() | hostile,
    comment=hostile,
    header=hostile,
)
def test_user_data_over_the_wire_adds_no_event_and_no_header(
    echo_server: Server,
    data: str,
    event: str | None,
    id: str | None,
    comment: str,
    header: str,
) -> None:
    """Over a real socket: one event (or a refusal), then "end"; one X-Echo header."""
    query = _query(data=data, event=event, id=id, comment=comment, header=header)
    with RawStream(echo_server.port, "/echo?" + query, timeout=10) as stream:
        # Refused before anything was sent exactly when the value holds a
        # control character but tab, or one HTTP/1.1 headers cannot carry.
        assert (stream.status == 500) == bool(
            _HEADER_CONTROL.search(header) or not _latin1(header)
        )
        if stream.status == 500:
            return
        assert stream.status == 200
        assert stream.headers["x-echo"] == header.strip()
        stream.read_to_end(timeout=10)
    messages = EventStreamDecoder().feed(stream.body)
    assert [m.event for m in messages][-1] == "end"
    assert len(messages) == 2
    first = messages[0]
    if first.event == "refused":
        return
    assert first.data == normalised(data)
    assert first.event == (event or "message")


def test_header_values_with_line_breaks_never_reach_the_wire(serve: Serve) -> None:
    """A header value carrying CRLF + a new header is refused with a 500."""
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse(headers={"X-Name": event.request.args["v"]})
        event.set_stream_callback(lambda writer: writer.close())

    server = serve(app)
    evil = urllib.parse.quote("x\r\nSet-Cookie: owned=1")
    with RawStream(server.port, f"/events?v={evil}") as stream:
        assert stream.status == 500
        assert "set-cookie" not in stream.headers
