"""Request framing is read one way only: ambiguous requests are refused.

Every case sends one request followed by a second one (``GET /smuggled``),
on a connection the first request does not ask to keep: the second must
never run, whether the first was framed well (it is answered, then the
connection closes) or badly (``400``/``501``/``505`` with ``Connection:
close``, and nothing after it is parsed). Bodies carry the smuggled request
too, so a server that misreads where a body ends would run it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

import pytest

from gsse import App
from gsse import Event
from gsse import Server
from gsse.framing import FramingError
from gsse.framing import parse_chunk_line
from gsse.framing import parse_field_lines
from tests.reliability.support import header_of
from tests.reliability.support import read_all
from tests.reliability.support import status_of

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(60)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
BODY = b"hello"
CLOSE = b"Connection: close\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED = chunk(BODY) + b"0\r\n\r\n"
#: A chunked body whose data is itself a request.
CHUNKED_SMUGGLE = chunk(SMUGGLED) + b"0\r\n\r\n"


def post(*headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    head = b"POST /upload HTTP/" + version + b"\r\nHost: x\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def te(body: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked", body=body)


def line(request_line: bytes) -> bytes:
    return request_line + b"\r\nHost: x\r\n\r\n"


# (id, raw request sent before SMUGGLED, expected status of the one answer)
CASES: list[tuple[str, bytes, int]] = [
    # -- well framed: answered, and the connection then closes -------------
    ("cl", post(CLOSE[:-2], b"Content-Length: 5", body=BODY), 200),
    ("cl-zero", post(CLOSE[:-2], b"Content-Length: 0"), 200),
    ("cl-leading-zeros", post(CLOSE[:-2], b"Content-Length: 005", body=BODY), 200),
    ("cl-ows", post(CLOSE[:-2], b"Content-Length: \t5 ", body=BODY), 200),
    (
        "cl-body-is-a-request",
        post(CLOSE[:-2], b"Content-Length: %d" % len(SMUGGLED), body=SMUGGLED),
        200,
    ),
    ("chunked", post(CLOSE[:-2], b"Transfer-Encoding: chunked", body=CHUNKED), 200),
    (
        "chunked-capitalised",
        post(CLOSE[:-2], b"Transfer-Encoding: Chunked", body=CHUNKED),
        200,
    ),
    (
        "chunked-body-is-a-request",
        post(CLOSE[:-2], b"Transfer-Encoding: chunked", body=CHUNKED_SMUGGLE),
        200,
    ),
    (
        "chunk-extension",
        post(
            CLOSE[:-2],
            b"Transfer-Encoding: chunked",
            body=b"5;a=b\r\nhello\r\n0\r\n\r\n",
        ),
        200,
    ),
    (
        "chunk-extension-quoted",
        post(
            CLOSE[:-2],
            b"Transfer-Encoding: chunked",
            body=b'5 ; a = "b \\" c" ; d\r\nhello\r\n0\r\n\r\n',
        ),
        200,
    ),
    (
        "chunk-trailer",
        post(
            CLOSE[:-2],
            b"Transfer-Encoding: chunked",
            body=b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
        ),
        200,
    ),
    (
        "chunk-size-uppercase-hex",
        post(
            CLOSE[:-2],
            b"Transfer-Encoding: chunked",
            body=b"A\r\n0123456789\r\n0\r\n\r\n",
        ),
        200,
    ),
    ("no-body", post(CLOSE[:-2]), 200),
    ("http10-cl", post(b"Content-Length: 5", body=BODY, version=b"1.0"), 200),
    # -- Content-Length -------------------------------------------------------
    (
        "cl-twice-different",
        post(b"Content-Length: 5", b"Content-Length: 6", body=BODY),
        400,
    ),
    ("cl-twice-same", post(b"Content-Length: 5", b"Content-Length: 5", body=BODY), 400),
    ("cl-list", post(b"Content-Length: 5, 5", body=BODY), 400),
    ("cl-plus", post(b"Content-Length: +5", body=BODY), 400),
    ("cl-underscore", post(b"Content-Length: 0_5", body=BODY), 400),
    ("cl-negative", post(b"Content-Length: -5", body=BODY), 400),
    ("cl-hex", post(b"Content-Length: 0x5", body=BODY), 400),
    ("cl-two-numbers", post(b"Content-Length: 5 5", body=BODY), 400),
    ("cl-empty", post(b"Content-Length: ", body=BODY), 400),
    ("cl-superscript-digit", post(b"Content-Length: \xb2", body=BODY), 400),
    ("cl-huge", post(b"Content-Length: " + b"9" * 30, body=BODY), 413),
    # -- Transfer-Encoding ----------------------------------------------------
    (
        "te-and-cl",
        post(b"Transfer-Encoding: chunked", b"Content-Length: 5", body=CHUNKED),
        400,
    ),
    (
        "cl-and-te",
        post(b"Content-Length: 5", b"Transfer-Encoding: chunked", body=CHUNKED),
        400,
    ),
    (
        "te-chunked-chunked",
        post(b"Transfer-Encoding: chunked, chunked", body=CHUNKED),
        400,
    ),
    (
        "te-chunked-on-two-lines",
        post(
            b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=CHUNKED
        ),
        400,
    ),
    ("te-not-last", post(b"Transfer-Encoding: chunked, gzip", body=CHUNKED), 400),
    ("te-gzip-alone", post(b"Transfer-Encoding: gzip", body=CHUNKED), 400),
    ("te-identity", post(b"Transfer-Encoding: identity", body=CHUNKED), 400),
    ("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked", body=CHUNKED), 501),
    ("te-unknown", post(b"Transfer-Encoding: foo", body=CHUNKED), 501),
    ("te-lookalike", post(b"Transfer-Encoding: xchunked", body=CHUNKED), 501),
    ("te-empty-element", post(b"Transfer-Encoding: , chunked", body=CHUNKED), 400),
    ("te-empty", post(b"Transfer-Encoding: ", body=CHUNKED), 400),
    ("te-with-parameter", post(b"Transfer-Encoding: chunked;q=1", body=CHUNKED), 400),
    ("te-vertical-tab", post(b"Transfer-Encoding: \x0bchunked", body=CHUNKED), 400),
    ("te-space-before-colon", post(b"Transfer-Encoding : chunked", body=CHUNKED), 400),
    (
        "te-on-http10",
        post(b"Transfer-Encoding: chunked", body=CHUNKED, version=b"1.0"),
        400,
    ),
    # -- chunked bodies -------------------------------------------------------
    ("chunk-size-not-hex", te(b"x\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-empty", te(b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-negative", te(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-0x", te(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-space", te(b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-overflow", te(b"f" * 20 + b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-data-too-long", te(b"3\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-bare-lf", te(b"5\nhello\n0\n\n"), 400),
    ("chunk-bad-trailer", te(b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"), 400),
    ("chunked-cut-short", te(b"5\r\nhel"), 400),
    ("chunk-ext-bare-lf", te(b"5;a\nb\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-ext-no-name", te(b"5;=b\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-ext-open-quote", te(b'5;a="b\r\nhello\r\n0\r\n\r\n'), 400),
    ("last-chunk-bare-lf", te(b"5\r\nhello\r\n0\n\r\n"), 400),
    ("trailer-bare-lf", te(b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"), 400),
    # -- request lines --------------------------------------------------------
    ("version-no-minor", line(b"GET / HTTP/1"), 400),
    ("http09", b"GET /\r\n", 400),
    ("lowercase-method", line(b"get / HTTP/1.1"), 400),
    ("vertical-tab-separator", line(b"GET\x0b/ HTTP/1.1"), 400),
    ("nbsp-separator", line(b"GET\xa0/\xa0HTTP/1.1"), 400),
    ("tab-separator", line(b"GET\t/ HTTP/1.1"), 400),
    ("two-spaces", line(b"GET  / HTTP/1.1"), 400),
    ("version-three-parts", line(b"GET / HTTP/1.1.1"), 400),
    ("version-lowercase", line(b"GET / http/1.1"), 400),
    ("version-leading-zero", line(b"GET / HTTP/01.1"), 400),
    ("version-2", line(b"GET / HTTP/2.0"), 505),
    ("space-in-target", line(b"GET /a b HTTP/1.1"), 400),
    ("request-line-bare-lf", b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("escape-in-target", line(b"GET /\x1b[31m HTTP/1.1"), 400),
    # -- header lines ---------------------------------------------------------
    ("host-twice", line(b"GET / HTTP/1.1\r\nHost: y"), 400),
    ("content-type-twice", post(b"Content-Type: a/b", b"Content-Type: c/d"), 400),
    ("header-bare-lf", b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    ("header-escape", line(b"GET / HTTP/1.1\r\nX-A: \x1b[2J"), 400),
    ("header-cr", line(b"GET / HTTP/1.1\r\nX-A: a\rb"), 400),
]


def smuggle_app(hits: list[str]) -> App:
    """/upload echoes its body's length; /smuggled records that it ran."""
    app = App()

    @app.route("/upload", methods=["POST"])
    def upload(event: Event) -> str:
        return str(len(event.request.get_data()))

    @app.route("/smuggled", methods=["GET", "POST"])
    def smuggled(event: Event) -> str:
        hits.append(event.request.path)
        return "smuggled"

    @app.route("/", methods=["GET", "POST"])
    def index(event: Event) -> str:
        return "ok"

    return app


def responses(reply: bytes) -> int:
    """How many status lines ``reply`` holds."""
    return len(re.findall(rb"HTTP/1\.[01] \d\d\d ", reply))


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock, timeout=10)


def test_the_table_has_enough_cases() -> None:
    """The framing table covers at least 40 cases, valid and invalid."""
    assert len(CASES) >= 40
    assert {status for _, _, status in CASES} >= {200, 400, 413, 501, 505}


@pytest.mark.parametrize(
    ("data", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_framing_case_gets_its_status_and_smuggles_nothing(
    serve: Serve, data: bytes, status: int
) -> None:
    """One answer with the expected status; the request after it never runs."""
    hits: list[str] = []
    server = serve(smuggle_app(hits))
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) == status, reply
    assert responses(reply) == 1, reply
    assert b"smuggled" not in reply
    assert header_of(reply, "Connection") == "close"
    assert hits == []


def raw_wsgi_app(hits: list[str]) -> Any:
    """A plain WSGI app (no werkzeug) that reads the whole body."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/smuggled":
            hits.append("/smuggled")
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(str(len(body)))))])
        return [str(len(body)).encode()]

    return app


@pytest.mark.parametrize(
    "data",
    [
        te(b"x\r\nhello\r\n0\r\n\r\n"),
        te(b"\r\nhello\r\n0\r\n\r\n"),
        te(b"3\r\nhello\r\n0\r\n\r\n"),
        te(b"5\r\nhel"),
        post(b"Content-Length: 1000", body=BODY),
    ],
    ids=["not-hex", "empty-size", "too-long", "cut-in-chunk", "cl-cut-short"],
)
def test_a_bad_body_read_by_a_plain_wsgi_app_gets_400(
    serve: Serve, data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain WSGI app that lets a body error through gets 400, no traceback."""
    hits: list[str] = []
    server = serve(raw_wsgi_app(hits))
    reply = exchange(server.port, data + SMUGGLED)
    assert status_of(reply) == 400, reply
    assert header_of(reply, "Connection") == "close"
    assert responses(reply) == 1
    assert hits == []
    assert "Traceback" not in capsys.readouterr().err


def test_keep_alive_still_serves_well_framed_requests_in_turn(serve: Serve) -> None:
    """Strictness costs nothing to good clients: pipelined requests all run."""
    hits: list[str] = []
    server = serve(smuggle_app(hits))
    data = (
        post(b"Content-Length: 5", body=BODY)
        + post(b"Transfer-Encoding: chunked", body=CHUNKED)
        + SMUGGLED
        + b"\r\n"  # one empty line before a request is ignored (RFC 9112 2.2)
        + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = exchange(server.port, data)
    assert responses(reply) == 4, reply
    assert hits == ["/smuggled"]


@pytest.mark.parametrize(
    ("lines", "fields"),
    [
        (["X:\r\n"], [("X", "")]),
        (["X: \t \r\n"], [("X", "")]),
        (["X:\ta \t b\t \r\n"], [("X", "a \t b")]),
        (["X: caf\xe9\r\n"], [("X", "caf\xe9")]),
        (["X: a\r\n", "\r\n", "Y: b\r\n"], [("X", "a")]),
    ],
)
def test_header_lines_parse_to_trimmed_values(
    lines: list[str], fields: list[tuple[str, str]]
) -> None:
    """Values lose outer whitespace; parsing stops at the blank line."""
    assert parse_field_lines(lines) == fields


@pytest.mark.parametrize(
    "lines",
    [
        ["X: a\x1bb\r\n"],
        ["X : a\r\n"],
        ["X: a\rb\r\n"],
        ["X: a\n"],
        [" X: a\r\n"],
        ["X: a\x00\r\n"],
        ["X: \x7f\r\n"],
        ["X: a\r\n", "\tb\x1b\r\n"],
        ["X\r\n"],
        ["(X): a\r\n"],
    ],
)
def test_bad_header_lines_are_refused(lines: list[str]) -> None:
    """Any header line that is not exactly name: value CRLF raises FramingError."""
    with pytest.raises(FramingError) as info:
        parse_field_lines(lines)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("line", "size"),
    [
        ("5\r\n", 5),
        ("A;x=1\r\n", 10),
        ('0;a="q \\" x";b\r\n', 0),
        ("f" * 16 + "\r\n", 2**64 - 1),
    ],
)
def test_chunk_lines_parse(line: str, size: int) -> None:
    """Hex sizes with optional extensions give the chunk size."""
    assert parse_chunk_line(line) == size


@pytest.mark.parametrize(
    "line",
    [
        "5 \r\n",
        "\r\n",
        "-5\r\n",
        "0x5\r\n",
        "5;\nX\r\n",
        "5\n",
        "f" * 17 + "\r\n",
        '5;a="x\r\n',
        "5;=b\r\n",
        "+5\r\n",
    ],
)
def test_bad_chunk_lines_are_refused(line: str) -> None:
    """Anything but hex digits and well-formed extensions is refused."""
    with pytest.raises(FramingError):
        parse_chunk_line(line)
