"""The options a broker URL's query may carry (``memory://?history=50``).

gsse reads and removes them before the URL reaches its backend, so Redis
never sees them and ``memory://`` can refuse anything else (a typo).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

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
)
_FLOAT_OPTIONS = frozenset({"history_idle_ttl", "presence_ttl"})


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
