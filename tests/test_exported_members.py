"""gsse's public names are pinned: adding or removing one is a deliberate act."""

from __future__ import annotations

import gsse

#: The public API (see API.md); change it together with the docs and CHANGES.
EXPECTED = [
    "App",
    "Broker",
    "BrokerUnavailable",
    "ClientDisconnected",
    "Event",
    "Run",
    "Runs",
    "SSEMiddleware",
    "SSEResponse",
    "SSEWriter",
    "Server",
    "__version__",
    "run",
    "static_file",
    "stream",
]


def test_all_is_exactly_the_public_api() -> None:
    """gsse.__all__ lists exactly the expected names, in order, once each."""
    assert gsse.__all__ == EXPECTED


def test_every_name_in_all_is_importable() -> None:
    """``from gsse import NAME`` works for each name and gives the module's object."""
    for name in gsse.__all__:
        namespace: dict[str, object] = {}
        exec(f"from gsse import {name}", namespace)
        assert namespace[name] is getattr(gsse, name), name


def test_star_import_gives_exactly_all() -> None:
    """``from gsse import *`` binds the names of __all__ and nothing else."""
    namespace: dict[str, object] = {}
    exec("from gsse import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(EXPECTED)
