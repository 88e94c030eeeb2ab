"""gsse.routing: the dict of plain paths answers exactly as werkzeug does.

Every request below is matched twice, by :meth:`Routes.lookup` and by a
plain werkzeug ``Map`` holding the same rules; the endpoint, the variables
or the exception (``404``, ``405`` with its allowed methods, a redirect and
its target) must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder

from gsse.routing import Routes


def rules() -> list[Rule]:
    return [
        Rule("/", endpoint="index"),
        Rule("/ping", endpoint="ping", methods=["GET"]),
        Rule("/ping", endpoint="ping_post", methods=["POST"]),
        Rule("/events", endpoint="events", methods=["GET", "DELETE"]),
        Rule("/<name>", endpoint="by_name", methods=["GET", "PUT"]),
        Rule("/rooms/<room>/events", endpoint="room"),
        Rule("/rooms/lobby/events", endpoint="lobby", methods=["GET"]),
        Rule("/dir/", endpoint="dir"),
        Rule("/loose/", endpoint="loose", strict_slashes=False),
        Rule("/twice", endpoint="twice_a"),
        Rule("/twice", endpoint="twice_b"),
        Rule("/page", endpoint="page", defaults={"n": 1}),
        Rule("/page/<int:n>", endpoint="page"),
        Rule("/old", endpoint="old", redirect_to="/ping"),
        Rule("/café", endpoint="cafe"),
        Rule("/files/<path:rest>", endpoint="files"),
        Rule("/files/readme", endpoint="readme", methods=["GET"]),
    ]


REQUESTS = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/ping"),
    ("HEAD", "/ping"),
    ("POST", "/ping"),
    ("PUT", "/ping"),
    ("DELETE", "/ping"),
    ("OPTIONS", "/ping"),
    ("GET", "/events"),
    ("DELETE", "/events"),
    ("POST", "/events"),
    ("GET", "/nothing/here"),
    ("GET", "/rooms/lobby/events"),
    ("GET", "/rooms/kitchen/events"),
    ("GET", "/dir/"),
    ("GET", "/dir"),
    ("GET", "/loose"),
    ("GET", "/loose/"),
    ("GET", "/twice"),
    ("GET", "/page"),
    ("GET", "/page/2"),
    ("GET", "/page/1"),
    ("GET", "/old"),
    ("GET", "/café"),
    ("GET", "/caf%C3%A9"),
    ("GET", "//ping"),
    ("GET", "/ping/"),
    ("GET", "/files/readme"),
    ("GET", "/files/a/b"),
    ("GET", "/Ping"),
    ("GET", ""),
]


def outcome(match: Any) -> tuple[Any, ...]:
    """What a match gave: its result, or the exception's status and details."""
    try:
        endpoint, values = match()
    except HTTPException as exc:
        return (
            type(exc).__name__,
            exc.code,
            sorted(getattr(exc, "valid_methods", None) or []),
            getattr(exc, "new_url", None),
        )
    return endpoint, dict(values)


def environ(method: str, path: str) -> dict[str, Any]:
    built = EnvironBuilder(path=path or "/", method=method).get_environ()
    if not path:
        built["PATH_INFO"] = ""
    return built


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_the_plain_path_dict_answers_as_werkzeug(method: str, path: str) -> None:
    """Same endpoint, variables, 404, 405 (and its methods) and redirects."""
    routes = Routes(rules())
    plain = Map(rules())
    env = environ(method, path)
    expected = outcome(lambda: plain.bind_to_environ(env).match())
    # twice: the first lookup builds the dict, the second uses it
    assert outcome(lambda: routes.lookup(env)) == expected
    assert outcome(lambda: routes.lookup(env)) == expected


def test_rules_added_after_a_lookup_are_seen() -> None:
    """The dict is rebuilt after every add(), however the rule was added."""
    routes = Routes([Rule("/a", endpoint="a", methods=["GET"])])
    assert outcome(lambda: routes.lookup(environ("GET", "/b")))[0] == "NotFound"
    routes.add(Rule("/b", endpoint="b", methods=["GET"]))
    assert routes.lookup(environ("GET", "/b")) == ("b", {})
    routes.add(Rule("/b", endpoint="b_post", methods=["POST"]))
    assert routes.lookup(environ("POST", "/b")) == ("b_post", {})


def test_a_websocket_request_is_left_to_werkzeug() -> None:
    """A ``ws://`` request does not match an HTTP rule (werkzeug's 400)."""
    routes = Routes([Rule("/ping", endpoint="ping")])
    env = environ("GET", "/ping")
    env["wsgi.url_scheme"] = "ws"
    plain = Map([Rule("/ping", endpoint="ping")])
    expected = outcome(lambda: plain.bind_to_environ(env).match())
    assert outcome(lambda: routes.lookup(env)) == expected
    assert expected[0] == "WebsocketMismatch"


def test_only_rules_a_lookup_decides_alone_are_in_the_dict() -> None:
    """Plain paths are answered from the dict; the rest is werkzeug's."""
    plain = Routes(rules())._plain_paths()
    assert plain["/ping"] == {"GET": "ping", "HEAD": "ping", "POST": "ping_post"}
    assert plain["/events"] == {"GET": "events", "HEAD": "events", "DELETE": "events"}
    assert "/rooms/lobby/events" in plain
    assert "/files/readme" in plain
    # any method (methods=None), two rules on one path and method, a sibling
    # with defaults, a redirect, a variable, a non-ASCII path: werkzeug's
    for path in ("/", "/twice", "/page", "/old", "/<name>", "/café"):
        assert path not in plain
