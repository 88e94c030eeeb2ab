"""examples/django_project: a real Django project's live page, in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import open_page
from tests.browser import screenshot_path
from tests.procs import processes
from tests.test_django import publish_note
from tests.test_django import start_project

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]


@pytest.mark.parametrize("host", ["gsse run", "gunicorn -k gevent"])
def test_notes_appear_live_in_chromium(tmp_path: Path, host: str) -> None:
    """Notes published through the page's CSRF-protected form appear in its feed."""
    with processes(tmp_path) as procs:
        port = start_project(procs, tmp_path, host)
        assert publish_note(port, "before the page").status_code == 201
        state = open_page(
            f"http://127.0.0.1:{port}/",
            before="document.getElementById('status').textContent === 'live'"
            " && window.hello !== undefined",
            action="const form = document.getElementById('publish');"
            " for (const text of ['first', 'second']) {"
            " form.text.value = text; form.requestSubmit(); }",
            until="window.received >= 2",
            result="({notes: [...document.querySelectorAll('#notes li')]"
            ".map(li => li.textContent), hello: window.hello,"
            " user: document.getElementById('user').textContent})",
            screenshot=screenshot_path("django_project")
            if host == "gsse run"
            else None,
            timeout=40,
        )
    fresh = state["notes"][:2]
    assert sorted(fresh) == ["anonymous: first", "anonymous: second"]
    assert state["notes"][2:] == ["anonymous: before the page"]
    assert state["hello"] == {"user": "anonymous", "notes": 1}
    assert state["user"] == "anonymous"
