"""The docs stay true to the code: generated pages are fresh, links resolve."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import gsse
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.procs import clean_env
from tests.procs import free_port
from tests.procs import gsse_command
from tests.procs import processes

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _gen_cli() -> object:
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_real_cli() -> None:
    """docs/cli-reference.md is gsse's help today (else: python docs/gen_cli.py)."""
    gen_cli = _gen_cli()
    expected = gen_cli.render()  # type: ignore[attr-defined]
    actual = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli-reference.md is stale: python docs/gen_cli.py"


def test_docs_name_the_current_version() -> None:
    """The version the docs talk about is gsse.__version__."""
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", gsse.__version__)
    assert "gsse.__version__" in (DOCS / "index.md").read_text(encoding="utf-8")


def test_every_image_in_the_docs_exists() -> None:
    """Each screenshot a page shows is committed under docs/."""
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", page.read_text("utf-8")):
            assert (DOCS / target).is_file(), f"{page.name} shows missing {target}"


def test_the_getting_started_app_runs_as_written(tmp_path: Path) -> None:
    """The hello.py of docs/getting-started.md serves its page and its stream."""
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    match = re.search(r"Save this as `hello.py`:\n\n```python\n(.*?)```", page, re.S)
    assert match, "getting-started.md lost its hello.py"
    (tmp_path / "hello.py").write_text(match.group(1), encoding="utf-8")
    port = free_port()
    with processes(tmp_path) as procs:
        server = procs.start(
            [*gsse_command(), "run", "hello:app", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
        )
        server.wait_port(port)
        assert http_get(port, "/")[0] == 200
        with RawStream(port, "/greetings?name=ada") as stream:
            messages = stream.events(2, timeout=10)
    assert [m.data for m in messages] == ["hello ada #0", "hello ada #1"]
