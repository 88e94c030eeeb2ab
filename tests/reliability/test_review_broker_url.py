"""A broker URL's query is read whole: typos and float seconds are not lost."""

from __future__ import annotations

import pytest

from gsse import Broker


@pytest.mark.parametrize(
    ("url", "ttl"),
    [
        ("memory://?history_idle_ttl=0.5", 0.5),
        ("memory://?history_idle_ttl=600", 600.0),
        ("memory://?history_idle_ttl=1e3", 1000.0),
        ("memory://?history_idle_ttl=0", 0.0),
    ],
)
def test_history_idle_ttl_in_a_url_takes_seconds_as_a_float(
    url: str, ttl: float
) -> None:
    """The URL form accepts what the keyword accepts: fractional seconds."""
    broker = Broker.from_url(url)
    assert broker.history_idle_ttl == ttl  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("memory://?histroy=5", "histroy"),
        ("memory://?max_history_byte=100", "max_history_byte"),
        ("memory://?history=5&ttl=3", "ttl"),
        ("memory://?foo", "foo"),
        ("memory://localhost", "host"),
        ("memory://x/y", "host"),
        ("memory://?history=5&history=6", "twice"),
        ("memory://?history_idle_ttl=soon", "number of seconds"),
        ("memory://?history_idle_ttl=nan", "history_idle_ttl"),
        ("memory://?history_idle_ttl=-1", "history_idle_ttl"),
        ("memory://?max_history_bytes=abc", "integer"),
        ("memory://?max_channels=", "integer"),
    ],
)
def test_a_memory_url_with_an_unknown_or_bad_option_is_refused(
    url: str, named: str
) -> None:
    """memory:// never ignores part of its URL: ValueError naming what to fix."""
    with pytest.raises(ValueError, match=named) as refused:
        Broker.from_url(url)
    assert url in str(refused.value) or "history_idle_ttl" in named
