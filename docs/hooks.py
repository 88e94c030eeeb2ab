"""MkDocs hook: render the reST bits of gsse's docstrings as readable HTML.

The docstrings follow werkzeug's manner (``:class:`~gsse.App```,
``.. versionadded::``), which mkdocstrings shows literally; this turns the
roles into code spans and the version notes into a short line.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

ROLE = re.compile(
    r":(?:class|meth|func|mod|attr|data|exc|obj):<code>(~?)([^<]+)</code>"
)
VERSION = re.compile(r"\.\. (versionadded|versionchanged):: ([\w.]+)")
WORDS = {"versionadded": "New in version", "versionchanged": "Changed in version"}


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def _version(match: re.Match[str]) -> str:
    return f"<em>{WORDS[match.group(1)]} {match.group(2)}.</em>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return VERSION.sub(_version, ROLE.sub(_role, html))


# Topic pages other parts of the project write; each joins the nav (under
# "Guides", in this order) as soon as its file exists, so the strict build
# passes before and after it lands.
GUIDES = [
    ("The writer", "writer.md"),
    ("Flask and any WSGI app", "flask.md"),
    ("Django", "django.md"),
    ("Blocking code: the thread pool", "bridge.md"),
    ("Channels, replay and Redis", "channels.md"),
    ("Resumable runs", "runs.md"),
    ("Presence and delivery counts", "presence.md"),
    ("Compacted channels and history by age", "compacted-channels.md"),
    ("The Python client", "client.md"),
    ("The browser: gsse.js", "browser.md"),
    ("Command line", "cli.md"),
    ("Performance", "performance.md"),
    ("Operations and security", "operations.md"),
    ("Deployment and tuning", "deployment.md"),
    ("Migrating", "migrating.md"),
    ("Troubleshooting", "troubleshooting.md"),
]

# API reference sections for objects that may not exist yet: (heading, path).
OPTIONAL_REFERENCE = [
    ("Any WSGI framework", "gsse.SSEMiddleware"),
    ("Channels", "gsse.Broker"),
    ("Resumable runs", "gsse.Runs"),
    ("Resumable runs", "gsse.Run"),
    ("Resumable runs", "gsse.runs.RunWriter"),
    ("Resumable runs", "gsse.runs.RunInfo"),
    ("Resumable runs", "gsse.runs.RunLimitExceeded"),
    ("Django (import gsse.django)", "gsse.django.stream"),
    ("Django (import gsse.django)", "gsse.django.subscribe"),
    ("Django (import gsse.django)", "gsse.django.follow"),
    ("Django (import gsse.django)", "gsse.django.SSEStreamingHttpResponse"),
    ("The client", "gsse.client.EventSource"),
    ("The client", "gsse.client.Message"),
    ("The client", "gsse.client.EventSourceError"),
    ("Testing your app", "gsse.testing.serve"),
    ("Testing your app", "gsse.testing.read_events"),
]

# mkdocstrings options per object: members a class inherits from a mixin.
REFERENCE_OPTIONS = {
    "gsse.Broker": "    options:\n      inherited_members: [presence, subscribers]\n",
}


def on_config(config: Any, **kwargs: Any) -> Any:
    docs = Path(config["docs_dir"])
    for section in config["nav"] or []:
        if isinstance(section, dict) and "Guides" in section:
            section["Guides"] = [
                {title: page} for title, page in GUIDES if (docs / page).is_file()
            ]
    return config


def _exists(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != "reference.md":
        return markdown
    extra = []
    for heading, dotted in OPTIONAL_REFERENCE:
        if _exists(dotted):
            if f"## {heading}\n" not in "\n".join(extra):
                extra.append(f"## {heading}\n")
            extra.append(f"::: {dotted}\n{REFERENCE_OPTIONS.get(dotted, '')}")
    return markdown.replace("<!-- optional-reference -->", "\n".join(extra))
