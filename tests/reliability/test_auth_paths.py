"""AuthMiddleware protects a path however it is spelled, for gsse and Flask apps."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request

from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter
from gsse import stream
from gsse.auth import AuthMiddleware
from gsse.paths import AmbiguousPath
from gsse.paths import PathPrefixes
from tests.reliability.support import counter
from tests.reliability.support import raw_request

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(90)

SECRET = "protected-content-7f3a"
PROTECTED = ["/events", "/api/private"]


def token_ok(request: Request) -> bool:
    return request.args.get("token") == "s3cret"


def send_secret(writer: SSEWriter) -> None:
    writer.send_event(SECRET)
    writer.close()


def gsse_app() -> App:
    app = App()

    @app.route("/events")
    def events(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(send_secret)

    @app.route("/api/private/<path:rest>")
    def private(event: Event) -> str:
        return SECRET

    @app.route("/api/public/<path:rest>")
    def public(event: Event) -> str:
        return "public"

    @app.route("/eventsfoo")
    def eventsfoo(event: Event) -> str:
        return "public"

    @app.route("/api/privatex")
    def privatex(event: Event) -> str:
        return "public"

    return app


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.route("/events")
    def events() -> Any:
        return stream(send_secret)

    @app.route("/api/private/<path:rest>")
    def private(rest: str) -> str:
        return SECRET

    @app.route("/api/public/<path:rest>")
    def public(rest: str) -> str:
        return "public"

    @app.route("/eventsfoo")
    def eventsfoo() -> str:
        return "public"

    @app.route("/api/privatex")
    def privatex() -> str:
        return "public"

    return app


APPS = {"gsse": gsse_app, "flask": flask_app}


def spellings(target: str) -> list[str]:
    """Request-targets that a router might dispatch to ``target`` (``/a/b``)."""
    rest = target[1:]
    first, _, tail = rest.partition("/")
    tail = "/" + tail if tail else ""
    encoded_slashes = "/" + rest.replace("/", "%2F")
    return [
        "/" + target,  # //events
        "//" + target,
        target.replace("/", "//"),
        "/%2F" + rest,
        "/%2f" + rest,
        "/%2F%2F" + rest,
        encoded_slashes,
        "/%5C" + rest,  # a backslash
        "/./" + rest,
        "/a/../" + rest,
        "/%2e/" + rest,
        "/%2E%2E/" + rest,
        "/.%2e/" + rest,
        "/%252e%252e/" + rest,  # dots encoded twice
        "/.;x/" + rest,
        target + "/",
        target + "//",
        target + "/.",
        target + "/..",
        target + "/%2e",
        target.upper(),
        "/" + first.capitalize() + tail,
        target + ";x=1",
        "/" + first + ";x" + tail,
        "/;x/" + rest,
        "/%" + format(ord(first[0]), "02x") + first[1:] + tail,
        "/%25" + format(ord(first[0]), "02X") + first[1:] + tail,  # encoded twice
        target + "%3Bx",
        target + "%3Fx",
        target + "%23f",
        target + ".",
        target + "%20",
        target + "%00",
        target + "%0d%0a",
        "/" + first + "%00" + tail,
        rest,  # no leading slash
        "http://127.0.0.1" + target,  # absolute form
        "http://127.0.0.1/" + target,
    ]


def get(port: int, target: str) -> tuple[int, bytes]:
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    answer = raw_request(port, request, timeout=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("kind", sorted(APPS))
@pytest.mark.parametrize("target", ["/events", "/api/private/x"])
def test_no_spelling_of_a_protected_path_gets_through(
    serve: Serve, kind: str, target: str
) -> None:
    """Every spelling of a protected path is refused (400/401) or not found."""
    server = serve(AuthMiddleware(APPS[kind](), token_ok, paths=PROTECTED))
    tried = spellings(target)
    assert len(tried) >= 20
    leaks = []
    for spelling in tried:
        status, body = get(server.port, spelling)
        if status not in (400, 401, 404) or SECRET.encode() in body:
            leaks.append((spelling, status))
    assert leaks == []


#: Separators, segments and suffixes that request-targets are built from.
SEPARATORS = st.sampled_from(["/", "/", "//", "%2F", "%2f", "%5C", "/./", "/%2e/"])
SEGMENTS = st.sampled_from(
    ["events", "EVENTS", "%65vents", "%2565vents", "api", "Api", "private"]
    + ["%70rivate", "x", ".", "..", "%2e%2e", "a", "public", "http:"]
)
SUFFIXES = st.sampled_from(["", "", "", ";x=1", "%3Bx", "%3F", "%23", ".", "%20"])
SEGMENT = st.tuples(SEPARATORS, SEGMENTS, SUFFIXES).map("".join)


@pytest.fixture(scope="module")
def guarded_servers() -> Iterator[list[Server]]:
    """One server per app kind for every generated example, behind AuthMiddleware."""
    servers = []
    for make in APPS.values():
        server = Server(
            AuthMiddleware(make(), token_ok, paths=PROTECTED), "127.0.0.1", 0
        )
        server.start()
        servers.append(server)
    yield servers
    for server in servers:
        server.stop(graceful_timeout=0)


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(SEGMENT, min_size=1, max_size=5),
    end=st.sampled_from(["", "/", "//", "?token=no"]),
)
def test_no_generated_spelling_gets_through(
    guarded_servers: list[Server], segments: list[str], end: str
) -> None:
    """Random mixes of slashes, encodings, dots and params never show the content."""
    target = "".join(segments) + end
    if not target.startswith("/"):
        target = "/" + target
    for server in guarded_servers:
        status, body = get(server.port, target)
        assert SECRET.encode() not in body, (target, status)
        assert status < 500, (target, status)


@pytest.mark.parametrize("kind", sorted(APPS))
def test_the_right_token_opens_repeated_slash_spellings(
    serve: Serve, kind: str
) -> None:
    """With the token, //events and /api//private/x reach the view the router meant."""
    server = serve(AuthMiddleware(APPS[kind](), token_ok, paths=PROTECTED))
    for target in [
        "/events",
        "//events",
        "/%2Fevents",
        "/api//private/x",
        "/api/private/x",
    ]:
        status, body = get(server.port, target + "?token=s3cret")
        assert (target, status) == (target, 200)
        assert SECRET.encode() in body


@pytest.mark.parametrize("kind", sorted(APPS))
def test_prefixes_match_whole_segments_only(serve: Serve, kind: str) -> None:
    """/eventsfoo, /api/privatex and /api/public/... stay public next to them."""
    server = serve(AuthMiddleware(APPS[kind](), token_ok, paths=PROTECTED))
    for target in ["/eventsfoo", "/api/privatex", "/api/public/x", "//api/public/x"]:
        status, body = get(server.port, target)
        assert (target, status, body) == (target, 200, b"public")


def test_an_ambiguous_path_is_a_counted_400(serve: Serve) -> None:
    """A dot segment anywhere gets 400 naming it, counted as an auth refusal."""
    server = serve(AuthMiddleware(gsse_app(), token_ok, paths=PROTECTED))
    before = counter("auth_denied")
    status, body = get(server.port, "/api/public/../../events?token=s3cret")
    assert status == 400
    assert b"dot segment" in body
    assert counter("auth_denied") == before + 1


def test_a_refused_path_cannot_forge_log_lines(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A path carrying CR LF is refused and logged on one line, its bytes escaped."""
    server = serve(AuthMiddleware(gsse_app(), token_ok, paths=PROTECTED))
    with caplog.at_level(logging.INFO, logger="gsse.auth"):
        status, _ = get(server.port, "/events%0d%0aINFO%20forged%1b[2J")
    assert status == 400
    messages = [r.getMessage() for r in caplog.records if r.name == "gsse.auth"]
    assert len(messages) == 1
    assert "\n" not in messages[0] and "\x1b" not in messages[0]
    assert "\\r\\n" in messages[0]


@pytest.mark.parametrize(
    ("paths", "error", "message"),
    [
        ("/events", TypeError, r"paths=\['/events'\]"),
        ([], ValueError, "protects nothing"),
        (["events"], ValueError, "starting with '/'"),
        (["/a/../events"], ValueError, "dot segment"),
        (["/events;x"], ValueError, "decoded path"),
        (["/%65vents"], ValueError, "decoded path"),
        ([b"/events"], ValueError, "str starting"),
    ],
)
def test_bad_prefixes_are_refused(paths: Any, error: type, message: str) -> None:
    """Prefixes that could never match as written raise, saying what to write."""
    with pytest.raises(error, match=message):
        AuthMiddleware(gsse_app(), token_ok, paths=paths)


@pytest.mark.parametrize(
    ("path", "covered"),
    [
        ("/events", True),
        ("", False),
        ("/", False),
        ("/Events/", True),
        ("/events.", True),
        ("/events /x", True),
        ("\\events", True),
        ("/api/private", True),
        ("/api/private/a/b", True),
        ("/api/privat", False),
        ("/api", False),
        ("/api/PRIVATE;v=1/a", True),
        ("/%C3%A9v%C3%A9nements", False),
        ("/caf\xc3\xa9/x", False),
        ("https://evil.example/events", True),
    ],
)
def test_coverage_of_single_paths(path: str, covered: bool) -> None:
    """PathPrefixes.covers answers for decoded WSGI paths, UTF-8 carried as latin-1."""
    prefixes = PathPrefixes(PROTECTED)
    assert prefixes.covers(path) is covered


def test_non_ascii_prefixes_match_utf8_paths() -> None:
    """A non-ASCII prefix matches a path's UTF-8 bytes, as werkzeug decodes them."""
    prefixes = PathPrefixes(["/événements"])
    assert prefixes.covers("/\xc3\xa9v\xc3\xa9nements/1")
    assert prefixes.covers("/%C3%89v%C3%A9nements")
    assert not prefixes.covers("/evenements")


@pytest.mark.parametrize(
    "path", ["/x/../events", "/%2e%2e/x", "/a\x00", "/a\xc2\x85b", "/%25252525252e"]
)
def test_ambiguous_paths_raise(path: str) -> None:
    """Dot segments, control characters and endless encodings raise AmbiguousPath."""
    with pytest.raises(AmbiguousPath):
        PathPrefixes(PROTECTED).covers(path)
