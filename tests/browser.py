"""Open pages in headless Debian Chromium, from tests, with every wait bounded.

Playwright's sync API drives the browser from an event loop of its own,
which does not mix with the gevent monkey-patching the suite runs under. So
each page is opened by a fresh, unpatched Python (``python -m tests.browser
SPEC``) that prints one JSON line; the test reads it back.

Set ``GSSE_SCREENSHOTS=1`` to save the screenshots the tests ask for under
``docs/screenshots/`` (the docs pages show them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = REPO / "docs" / "screenshots"


def require_browser() -> None:
    """Skip the test, with the reason, when Chromium or playwright is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian chromium at {CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("needs python playwright (pip install playwright)")


def screenshot_path(name: str) -> Path | None:
    """Where to save screenshot ``name``, or ``None`` unless GSSE_SCREENSHOTS=1."""
    if os.environ.get("GSSE_SCREENSHOTS", "") not in ("1", "true", "yes"):
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def open_page(
    url: str,
    *,
    until: str,
    before: str | None = None,
    action: str | None = None,
    result: str = "document.body.innerText",
    screenshot: Path | None = None,
    timeout: float = 60.0,
) -> Any:
    """Open ``url``, wait until the JS expression ``until`` is true, return ``result``.

    :param until: a JavaScript expression polled in the page, e.g.
        ``"document.querySelectorAll('li').length >= 3"``.
    :param before: with ``action``: an expression to wait for first.
    :param action: JavaScript run once ``before`` holds (say, fill in a form
        and submit it), before waiting for ``until``.
    :param result: a JavaScript expression whose JSON value is returned.
    :param screenshot: save a PNG of the page here once ``until`` holds.
    :param timeout: seconds ``until`` may take (the process gets more).
    :raises AssertionError: the page failed to load or ``until`` never held;
        the message carries the browser's console and the page's text.
    """
    require_browser()
    spec = {
        "url": url,
        "until": until,
        "before": before,
        "action": action,
        "result": result,
        "screenshot": str(screenshot) if screenshot else None,
        "timeout_ms": int(timeout * 1000),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.browser", json.dumps(spec)],
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the browser did not finish with {url}") from exc
    if done.returncode != 0:
        raise AssertionError(f"the browser failed on {url}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _browse(spec: dict[str, Any]) -> Any:
    """Runs in the child process: no gevent, just playwright."""
    from playwright.sync_api import Error
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Short viewport, full-page shots: screenshots end where the page does.
            page = browser.new_page(viewport={"width": 800, "height": 240})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(spec["url"], timeout=spec["timeout_ms"])

            def wait_for(expression: str) -> None:
                try:
                    page.wait_for_function(expression, timeout=spec["timeout_ms"])
                except Error as exc:
                    text = page.evaluate("document.body.innerText")
                    raise SystemExit(
                        f"{expression!r} never held: {exc}\n"
                        f"console: {console}\npage text:\n{text}"
                    ) from None

            if spec["before"]:
                wait_for(spec["before"])
            if spec["action"]:
                page.evaluate(spec["action"])
            wait_for(spec["until"])
            if spec["screenshot"]:
                page.screenshot(path=spec["screenshot"], full_page=True)
            return page.evaluate(spec["result"])
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(_browse(json.loads(sys.argv[1]))))
