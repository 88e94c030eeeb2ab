"""Broker URLs: the backend each scheme names, and the options a query carries.

gsse reads and removes the query's options (``memory://?history=50``)
before the URL reaches its backend, so Redis never sees them and
``memory://`` can refuse anything else (a typo). Backends are found by
scheme (:func:`register_backend`): they subclass ``Broker``, so neither
this module nor ``base`` imports them (:mod:`gsse.brokers.backends`
registers them when the package is imported).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

if TYPE_CHECKING:
    from .base import Broker

#: The environment variable ``gsse run --broker`` sets.
BROKER_ENV = "GSSE_BROKER"

#: Builds a backend from its URL (without gsse's query options) and the
#: options left once the limits are taken out.
BackendFactory = Callable[[str, dict[str, Any]], "Broker"]

#: URL scheme -> backend (see :func:`register_backend`).
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Let ``Broker.from_url`` build ``scheme://`` URLs with ``factory``."""
    _BACKENDS[scheme.lower()] = factory


def build_from_url(url: str | None, given: dict[str, Any]) -> Broker:
    """The broker ``url`` names, with ``given`` options over the query's."""
    if url is None:
        url = os.environ.get(BROKER_ENV) or "memory://"
    if not isinstance(url, str):
        raise TypeError(f"the broker URL must be a str, got {url!r}")
    whole, (url, merged) = url, split_options(url)
    merged.update({k: v for k, v in given.items() if v is not None})
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":  # nothing else reads its URL: refuse leftovers
        check_memory_url(url, whole)
    backend = _BACKENDS.get(scheme)
    limits = {
        "max_event_size": merged.pop("max_event_size", None),
        "max_channels": merged.pop("max_channels", None),
    }
    if backend is None:
        raise ValueError(
            f"unknown broker URL {url!r}: use memory:// or redis://host:6379/0"
        )
    broker = backend(url, merged)
    broker.set_limits(**limits)
    return broker


#: Broker options a URL's query may carry (``memory://?history=50``), each
#: read as an int (``history_idle_ttl`` as seconds, a float); gsse removes
#: them before the URL reaches the backend.
URL_OPTIONS = (
    "history",
    "max_event_size",
    "max_channels",
    "max_history_events",
    "max_history_bytes",
    "history_idle_ttl",
    "presence_ttl",
    "history_ttl",
)
_FLOAT_OPTIONS = frozenset({"history_idle_ttl", "presence_ttl", "history_ttl"})


def split_options(url: str) -> tuple[str, dict[str, Any]]:
    """The URL without gsse's query options, and those options as numbers."""
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_OPTIONS:
            rest.append((name, value))
            continue
        if name in options:
            raise ValueError(f"broker URL option {name} is given twice: {url!r}")
        try:
            options[name] = float(value) if name in _FLOAT_OPTIONS else int(value)
        except ValueError:
            kind = "a number of seconds" if name in _FLOAT_OPTIONS else "an integer"
            raise ValueError(
                f"broker URL option {name}={value!r} must be {kind}: {url!r}"
            ) from None
    if not options:
        return url, options
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def check_memory_url(url: str, whole: str) -> None:
    """Refuse what a ``memory://`` URL would otherwise ignore (a typo'd option).

    :param url: the URL without gsse's own options; ``whole``: as given.
    """
    parts = urlsplit(url)
    if parts.query:
        unknown = sorted({name for name, _ in parse_qsl(parts.query, True)})
        raise ValueError(
            f"unknown memory:// option {', '.join(unknown) or parts.query!r} in"
            f" {whole!r}; the options are {', '.join(URL_OPTIONS)}"
        )
    if parts.netloc or parts.path.strip("/") or parts.fragment:
        raise ValueError(
            f"memory:// takes no host or path, got {whole!r}; write memory:// or"
            " memory://?history=100"
        )
