"""Drive several tabs of one Chromium profile for the gsse.js sharing tests.

Like ``tests/browser.py``, this runs in a fresh, unpatched Python (``python
-m tests.browser_tabs SCENARIO BASE_URL``) and prints one JSON line of
observations; the test, which runs the server, makes the assertions. Every
wait is bounded; a wait that times out ends the run with the pages' state.

Each tab loads ``BASE_URL/page?url=...&shared=1`` (see the test module),
which keeps what it received in ``window.got`` and its stream in ``window.s``.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any

from .browser import CHROMIUM
from .browser import CHROMIUM_ARGS

TIMEOUT = 30.0


def count(base: str) -> int:
    """The server's open-stream count, from the test app's ``/count``."""
    with urllib.request.urlopen(base + "/count", timeout=10) as response:
        return int(json.loads(response.read())["open"])


def wait(what: str, predicate: Any, state: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}: {json.dumps(state())}")


def got(page: Any) -> list[str]:
    return list(page.evaluate("window.got"))


def leader(page: Any) -> bool:
    return bool(page.evaluate("window.s.leader"))


def open_tabs(
    context: Any, base: str, stream: str, n: int, extra: str = ""
) -> list[Any]:
    pages = []
    for _ in range(n):
        page = context.new_page()
        url = f"{base}/page?url={stream}&shared=1{extra}"
        page.goto(url, timeout=TIMEOUT * 1000)
        pages.append(page)
    return pages


def handover(base: str, context: Any) -> dict[str, Any]:
    """Five tabs share a stream; close the holder, then freeze the next one."""
    pages = open_tabs(context, base, "/ticks/a", 5)
    state = lambda: {"got": [got(p)[-5:] for p in pages]}  # noqa: E731
    wait("five tabs receiving", lambda: all(len(got(p)) >= 5 for p in pages), state)
    counts_shared = [count(base) for _ in range(5)]
    leaders_before = [leader(p) for p in pages]
    holder = pages.pop(leaders_before.index(True))
    holder.close()
    marks = [len(got(p)) for p in pages]
    wait(
        "the others to go on after the holder closed",
        lambda: all(len(got(p)) >= m + 30 for p, m in zip(pages, marks, strict=True)),
        state,
    )
    wait("one stream again after the close", lambda: count(base) == 1, state)
    gap_after_close = [longest_gap(p) for p in pages]
    leaders_after_close = [leader(p) for p in pages]

    frozen = pages[leaders_after_close.index(True)]
    others = [p for p in pages if p is not frozen]
    # Debugger.pause stops the tab's JavaScript at its next statement, as a
    # frozen tab is stopped, while its socket stays open. (CDP's
    # Page.setWebLifecycleState "frozen" left a visible headless tab
    # running: its events kept coming.)
    cdp = context.new_cdp_session(frozen)
    cdp.send("Debugger.enable")
    cdp.send("Debugger.pause")
    marks = [len(got(p)) for p in others]
    wait(
        "a new holder while the old one is frozen",
        lambda: (
            any(leader(p) for p in others)
            and all(len(got(p)) >= m + 30 for p, m in zip(others, marks, strict=True))
        ),
        state,
    )
    count_while_frozen = count(base)
    cdp.send("Debugger.resume")
    cdp.send("Debugger.disable")
    wait(
        "the thawed tab to give up its stream",
        lambda: not leader(frozen) and count(base) == 1,
        state,
    )
    marks = [len(got(p)) for p in pages]
    wait(
        "every tab to go on after the thaw",
        lambda: all(len(got(p)) >= m + 10 for p, m in zip(pages, marks, strict=True)),
        state,
    )
    return {
        "counts_shared": counts_shared,
        "leaders_before": leaders_before,
        "leaders_after_close": leaders_after_close,
        "count_while_frozen": count_while_frozen,
        "count_after_thaw": count(base),
        "leaders_after_thaw": [leader(p) for p in pages],
        "thawed": pages.index(frozen),
        "got": [got(p) for p in pages],
        "longest_gap_after_close_ms": gap_after_close,
        "longest_gap_ms": [longest_gap(p) for p in pages],
    }


def two_urls(base: str, context: Any) -> dict[str, Any]:
    """Two tabs on each of two streams."""
    pages = open_tabs(context, base, "/ticks/a", 2)
    pages += open_tabs(context, base, "/ticks/b", 2)
    state = lambda: {"got": [got(p)[-5:] for p in pages]}  # noqa: E731
    wait("four tabs receiving", lambda: all(len(got(p)) >= 5 for p in pages), state)
    return {
        "counts": [count(base) for _ in range(5)],
        "leaders": [leader(p) for p in pages],
        "got": [got(p) for p in pages],
    }


def no_locks(base: str, context: Any) -> dict[str, Any]:
    """Three shared tabs in a browser without Web Locks."""
    pages = open_tabs(context, base, "/ticks/a", 3, "&nolocks=1")
    state = lambda: {"got": [got(p)[-5:] for p in pages]}  # noqa: E731
    wait("three tabs receiving", lambda: all(len(got(p)) >= 5 for p in pages), state)
    return {
        "counts": [count(base) for _ in range(5)],
        "leaders": [leader(p) for p in pages],
        "got": [got(p) for p in pages],
    }


def longest_gap(page: Any) -> float:
    """The longest pause between two events in ``page``, in ms (for reports)."""
    return float(
        page.evaluate("Math.max(...times.slice(1).map((t, i) => t - times[i]))")
    )


SCENARIOS = {"handover": handover, "two_urls": two_urls, "no_locks": no_locks}


def main(scenario: str, base: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return SCENARIOS[scenario](base, browser.new_context())
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
