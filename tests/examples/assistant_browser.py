"""Drive examples/assistant.py in Chromium: ask, reload mid-answer, 2nd tab, Stop.

Runs in a fresh, unpatched Python (``python -m tests.examples.assistant_browser
BASE_URL``), as tests/browser.py explains, and prints one JSON line of what
the pages showed; the test makes the assertions. Every wait is bounded.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.browser import CHROMIUM
from tests.browser import CHROMIUM_ARGS

TIMEOUT_MS = 30_000


def text(page: Any) -> str:
    return str(page.evaluate("document.getElementById('answer').textContent"))


def scenario(base: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            first = context.new_page()
            first.goto(base + "/", timeout=TIMEOUT_MS)
            first.click("button:has-text('Ask')")
            first.wait_for_function("window.tokens >= 4", timeout=TIMEOUT_MS)
            first.wait_for_function(
                "location.search.startsWith('?run=')", timeout=TIMEOUT_MS
            )
            before = text(first)
            first.reload(timeout=TIMEOUT_MS)
            # The reloaded page follows the run again: more than it had.
            first.wait_for_function(
                f"window.tokens >= {before.count(' ') + 2}", timeout=TIMEOUT_MS
            )
            after = text(first)
            second = context.new_page()
            second.goto(first.url, timeout=TIMEOUT_MS)
            second.wait_for_function(
                f"window.tokens >= {after.count(' ') + 1}", timeout=TIMEOUT_MS
            )
            second_text = text(second)
            second.click("#stop")
            for page in (first, second):
                page.wait_for_function(
                    "window.runStatus === 'cancelled'", timeout=TIMEOUT_MS
                )
            return {
                "before_reload": before,
                "after_reload": after,
                "second_tab": second_text,
                "statuses": [
                    first.evaluate("window.runStatus"),
                    second.evaluate("window.runStatus"),
                ],
                "first_final": text(first),
                "second_final": text(second),
            }
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(scenario(sys.argv[1])))
