"""Which handler a request goes to: a dict for plain paths, werkzeug for the rest.

werkzeug's ``Map.bind_to_environ(...).match()`` costs more than the rest of
a small request put together (binding builds an adapter, reads the host,
splits the path and walks its state machine). Most routes of an SSE app are
plain paths (``/events``, ``/ping``), so :class:`Routes` answers those from
a dict, and asks werkzeug whenever the answer could differ from a bare
lookup: variables, redirects, defaults, aliases, hosts and subdomains,
websockets, two rules on one path and method, a path werkzeug would
normalize (``//x``, ``/x/`` for ``/x``), an unknown method (``405``), an
unknown path (``404``). The result is always werkzeug's, only sooner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from werkzeug.routing import Map
from werkzeug.routing import Rule

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["Routes"]

#: ``wsgi.url_scheme`` values of plain HTTP requests (not websockets).
_HTTP_SCHEMES = frozenset(("http", "https"))
_NO_PARAMS: Mapping[str, Any] = {}


def _is_plain(rule: Rule) -> bool:
    """Whether werkzeug matches ``rule`` by its path and methods alone."""
    return (
        not rule.arguments
        and not rule.defaults
        and rule.redirect_to is None
        and not rule.alias
        and not rule.build_only
        and not rule.websocket
        and rule.host is None
        and not rule.subdomain
        and rule.methods is not None
    )


def _methods(
    same_path: list[Rule], by_endpoint: dict[str, list[Rule]]
) -> dict[str, str] | None:
    """``{method: endpoint}`` of the rules of one path, or ``None`` where a
    lookup could answer differently from werkzeug."""
    methods: dict[str, str] = {}
    for rule in same_path:
        # A sibling rule of the endpoint may redirect to it (werkzeug's
        # redirect_defaults), or a rule is more than a path: werkzeug's.
        if not all(_is_plain(other) for other in by_endpoint[rule.endpoint]):
            return None
        for method in rule.methods or ():
            if method in methods:  # two rules: werkzeug's order decides
                return None
            methods[method] = rule.endpoint
    return methods


class Routes(Map):
    """A werkzeug :class:`~werkzeug.routing.Map` with a dict for plain paths.

    It is an ordinary ``Map`` (``app.url_map``): rules added to it in any way
    are seen, as the dict is rebuilt after every :meth:`add`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._plain: dict[str, dict[str, str]] | None = None
        super().__init__(*args, **kwargs)

    def add(self, rulefactory: Any) -> None:
        super().add(rulefactory)
        self._plain = None

    def _plain_paths(self) -> dict[str, dict[str, str]]:
        """``{path: {method: endpoint}}`` of the rules a lookup decides alone."""
        rules: dict[str, list[Rule]] = {}
        by_endpoint: dict[str, list[Rule]] = {}
        for rule in self.iter_rules():
            rules.setdefault(rule.rule, []).append(rule)
            by_endpoint.setdefault(rule.endpoint, []).append(rule)
        plain: dict[str, dict[str, str]] = {}
        for path, same_path in rules.items():
            # ASCII only: werkzeug matches PATH_INFO decoded as UTF-8.
            if not path.startswith("/") or "//" in path or not path.isascii():
                continue
            methods = _methods(same_path, by_endpoint)
            if methods:
                plain[path] = methods
        return plain

    def lookup(self, environ: WSGIEnvironment) -> tuple[str, Mapping[str, Any]]:
        """``(endpoint, variables)`` for the request, as werkzeug matches it.

        Raises werkzeug's ``NotFound``, ``MethodNotAllowed`` or
        ``RequestRedirect`` as ``MapAdapter.match`` does.
        """
        plain = self._plain
        if plain is None:
            plain = self._plain = self._plain_paths()
        methods = plain.get(environ.get("PATH_INFO", ""))
        if methods is not None and environ.get("wsgi.url_scheme") in _HTTP_SCHEMES:
            endpoint = methods.get(environ.get("REQUEST_METHOD", "GET"))
            if endpoint is not None:
                return endpoint, _NO_PARAMS
        result: tuple[str, Mapping[str, Any]] = self.bind_to_environ(environ).match()
        return result
