"""gsse.js, the browser module: how it is served, and what it does in Chromium.

The browser tests load the module from a real gsse server into headless
Chromium (``tests/browser.py`` for one page, ``tests/browser_tabs.py`` for
several tabs of one profile) and compare what pages received with what the
server sent. Orders and contents are asserted, never durations.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests

import gsse
from gsse import App
from gsse import Event
from gsse import Server
from gsse import SSEWriter

from .browser import REPO
from .browser import open_page
from .browser import require_browser
from .vectors import as_dict
from .vectors import parse_cases

#: Seconds between two events of the ``/ticks`` streams.
TICK = 0.05

PAGE = """<!doctype html>
<title>gsse.js test</title>
<script type="module">
import * as gsse from "/_gsse/gsse.js";
const q = new URLSearchParams(location.search);
window.got = []; window.resets = []; window.stale = 0; window.opens = 0;
window.presence = []; window.times = [];
if (q.has("nolocks")) Object.defineProperty(navigator, "locks", {value: undefined});
const options = {shared: q.has("shared")};
const s = window.s = gsse.connect(q.get("url"), options);
s.onmessage = (e) => { got.push(e.data); times.push(performance.now()); };
s.onreset = (e) => resets.push([e.channel, e.payload.last_event_id, e.lastEventId]);
s.onstale = () => window.stale++;
s.onopen = () => window.opens++;
s.addEventListener("join", (e) => presence.push(["join", e.payload.user]));
s.onleave = (e) => presence.push(["leave", e.payload.user]);
</script>
"""


class Site:
    """A gsse app with the streams the browser tests need, and its server."""

    def __init__(self) -> None:
        self.app = App()
        self.server: Server | None = None
        self.start = time.monotonic()
        #: The Last-Event-ID of every request to a test stream, by path.
        self.requests: dict[str, list[str | None]] = {}
        app = self.app

        @app.route("/page")
        def page(event: Event) -> str:
            return PAGE

        @app.route("/count")
        def count(event: Event) -> dict[str, int]:
            assert self.server is not None
            return {"open": len(self.server.registry)}

        @app.route("/ticks/<name>")
        def ticks(event: Event) -> None:
            # Event n is due at start + n * TICK; a reconnect with
            # Last-Event-ID k gets k+1, k+2, ... (a replay), a new stream
            # starts at the next tick: the ids tell loss and repeats apart.
            last = event.last_event_id
            now = int((time.monotonic() - self.start) / TICK)
            first = int(last) + 1 if last and last.isdigit() else now + 1
            event.start_sse()
            event.set_stream_callback(lambda w: self._ticks(w, first))

        @app.route("/script/<name>")
        def script(event: Event) -> None:
            name = event.path_params["name"]
            seen = self.requests.setdefault(name, [])
            seen.append(event.last_event_id)
            SCRIPTS[name](event, len(seen))

    def _ticks(self, writer: SSEWriter, n: int) -> None:
        while True:
            gevent.sleep(max(0.0, self.start + n * TICK - time.monotonic()))
            writer.send_event(str(n), id=str(n))
            n += 1


def _send_all(event: Event, blocks: list[dict[str, Any]], **start: Any) -> None:
    event.start_sse(**start)

    def callback(writer: SSEWriter) -> None:
        for block in blocks:
            if "sleep" in block:
                gevent.sleep(block["sleep"])
            else:
                writer.send_event(**block)
        gevent.sleep(60)  # stay open: the page decides when it has enough

    event.set_stream_callback(callback)


def _reset(event: Event, n: int) -> None:
    reset = {"channel": "news", "last_event_id": "5"}
    _send_all(
        event,
        [
            {"data": "before", "id": "4"},
            {"event": "reset", "data": json.dumps(reset), "id": "9"},
            {"data": "after", "id": "10"},
        ],
    )


def _silent(event: Event, n: int) -> None:
    # Says it pings every 0.3 s, then sends nothing: what a dead proxy looks like.
    _send_all(
        event,
        [{"data": f"event {n}", "id": str(n)}],
        ping=0,
        retry=50,
        headers={"X-Gsse-Ping": "0.3"},
    )


def _pinged(event: Event, n: int) -> None:
    # Nothing but keep-alive comments for 3 s, with a 1 s interval announced.
    _send_all(
        event,
        [{"data": "one", "id": "1"}, {"sleep": 3.0}, {"data": "two", "id": "2"}],
        ping=0.2,
        headers={"X-Gsse-Ping": "1"},
    )


def _run(event: Event, n: int) -> None:
    # A resumable run as issue 21 will serve it: events, then end, then 204.
    if event.last_event_id:
        event.start_sse()  # never reached by a correct client
        event.set_stream_callback(lambda w: w.send_event("again"))
        return
    _send_all(
        event,
        [
            {"event": "progress", "data": "1", "id": "1"},
            {"event": "progress", "data": "2", "id": "2"},
            {"event": "end", "data": json.dumps({"status": "done"}), "id": "3"},
        ],
        retry=50,
    )


def _presence(event: Event, n: int) -> None:
    _send_all(
        event,
        [
            {"event": "join", "data": json.dumps({"user": "ann"}), "id": "1"},
            {"event": "join", "data": json.dumps({"user": "bob"}), "id": "2"},
            {"event": "leave", "data": json.dumps({"user": "ann"}), "id": "3"},
            {"data": "done", "id": "4"},
        ],
    )


SCRIPTS = {
    "reset": _reset,
    "silent": _silent,
    "pinged": _pinged,
    "run": _run,
    "presence": _presence,
}


@pytest.fixture
def site(serve: Any) -> Iterator[Site]:
    test_app = Site()

    @test_app.app.route("/script/ended")
    def ended(event: Event) -> tuple[str, int]:
        test_app.requests.setdefault("ended", []).append(event.last_event_id)
        return "", 204

    test_app.server = serve(test_app.app)
    yield test_app


def consecutive(ids: list[str]) -> bool:
    numbers = [int(i) for i in ids]
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def run_tabs(scenario: str, site: Site) -> Any:
    require_browser()
    assert site.server is not None
    done = subprocess.run(
        [sys.executable, "-m", "tests.browser_tabs", scenario, site.server.url],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- serving the module -------------------------------------------------------------


def test_module_is_served_as_javascript_with_caching(serve: Any) -> None:
    """/_gsse/gsse.js is the shipped file as text/javascript, revalidated by ETag."""
    server = serve(App())
    response = requests.get(server.url + "/_gsse/gsse.js", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.content == Path(gsse.static_file("gsse.js")).read_bytes()
    etag = response.headers["ETag"]
    again = requests.get(
        server.url + "/_gsse/gsse.js", headers={"If-None-Match": etag}, timeout=5
    )
    assert again.status_code == 304
    head = requests.head(server.url + "/_gsse/gsse.js", timeout=5)
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(
    "path", ["/_gsse/gsse.{v}.js", "/_gsse/gsse.js?v={v}", "/_gsse/gsse.js?x=1&v={v}"]
)
def test_versioned_url_is_cached_for_a_year(serve: Any, path: str) -> None:
    """A URL naming the installed version is public, a year long and immutable."""
    server = serve(App())
    url = server.url + path.format(v=gsse.__version__)
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    cache = {d.strip() for d in response.headers["Cache-Control"].split(",")}
    assert cache == {"public", "max-age=31536000", "immutable"}
    assert response.content == Path(gsse.static_file("gsse.js")).read_bytes()


@pytest.mark.parametrize("path", ["/_gsse/gsse.0.0.1.js", "/_gsse/gsse.js?v=0.0.1"])
def test_other_version_gets_todays_file_revalidated(serve: Any, path: str) -> None:
    """A page cached across an upgrade gets the current file, never cached long."""
    server = serve(App())
    response = requests.get(server.url + path, timeout=5)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"


def test_static_path_moves_or_turns_off_the_module(serve: Any) -> None:
    """App(static_path=...) moves the URL; None serves nothing there."""
    moved = serve(App(static_path="/assets/sse"))
    assert requests.get(moved.url + "/assets/sse/gsse.js", timeout=5).ok
    assert requests.get(moved.url + "/_gsse/gsse.js", timeout=5).status_code == 404
    off = serve(App(static_path=None))
    assert requests.get(off.url + "/_gsse/gsse.js", timeout=5).status_code == 404


def test_unknown_names_under_the_static_path_are_404(serve: Any) -> None:
    """Only the shipped module is served; other names fall through to routes."""
    app = App()

    @app.route("/_gsse/mine")
    def mine(event: Event) -> str:
        return "mine"

    server = serve(app)
    for path in ("/_gsse/other.js", "/_gsse/../gsse.js", "/_gsse/gsse.py", "/_gsse/"):
        assert requests.get(server.url + path, timeout=5).status_code == 404, path
    assert requests.get(server.url + "/_gsse/mine", timeout=5).text == "mine"
    posted = requests.post(server.url + "/_gsse/gsse.js", timeout=5)
    assert posted.status_code in (404, 405)


@pytest.mark.parametrize("bad", ["_gsse", "/_gsse/", "", 3])
def test_bad_static_path_is_refused(bad: Any) -> None:
    """A static_path that cannot prefix a URL path is a ValueError naming it."""
    with pytest.raises(ValueError, match="static_path must start with"):
        App(static_path=bad)


def test_static_file_and_url() -> None:
    """static_file() names the shipped file; unknown names are a ValueError."""
    path = Path(gsse.static_file("gsse.js"))
    assert path.is_file() and path.name == "gsse.js"
    assert path.stat().st_size < 16_000
    for bad in ("gsse.py", "../gsse.js", "GSSE.JS", ""):
        with pytest.raises(ValueError, match="ships no static file"):
            gsse.static_file(bad)
    assert App().static_url() == f"/_gsse/gsse.js?v={gsse.__version__}"
    with pytest.raises(ValueError, match="static_path=None"):
        App(static_path=None).static_url()


def test_streams_announce_their_keep_alive_interval(serve: Any) -> None:
    """Every stream says its ping interval in X-Gsse-Ping, which gsse.js reads."""
    app = App(ping=7)

    @app.route("/default")
    def default(event: Event) -> None:
        event.start_sse()
        event.set_stream_callback(lambda w: w.send_event("x"))

    @app.route("/own")
    def own(event: Event) -> None:
        event.start_sse(ping=0.5)
        event.set_stream_callback(lambda w: w.send_event("x"))

    server = serve(app)
    for path, expected in (("/default", "7"), ("/own", "0.5")):
        with requests.get(server.url + path, stream=True, timeout=5) as response:
            assert response.headers["X-Gsse-Ping"] == expected


@pytest.mark.slow
def test_wheel_ships_the_module(tmp_path: Path) -> None:
    """The built wheel contains gsse/static/gsse.js."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "gsse", source / "gsse")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
        + ["-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = tmp_path.glob("gsse-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "gsse/static/gsse.js" in archive.namelist()


# -- the module in Chromium -----------------------------------------------------------

VECTOR_PAGE = """<!doctype html>
<title>parser vectors</title>
<script type="module">
import {Parser} from "/_gsse/gsse.js";
const cases = %s;
const bytes = (hex) =>
  new Uint8Array(hex.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);
window.result = cases.map((hex) => [hex.length || 2, 2, 4, 6].map((step) => {
  const got = [], raw = bytes(hex);
  const parser = new Parser((m) =>
    got.push({data: m.data, event: m.type, id: m.id, retry: m.retry}));
  const n = step / 2;
  for (let i = 0; i < raw.length; i += n) parser.feed(raw.subarray(i, i + n));
  parser.end();
  return got;
}));
</script>
"""


@pytest.mark.browser
def test_parser_agrees_with_every_vector_in_chromium(serve: Any) -> None:
    """gsse.js's parser gives the spec's messages for every vector, in any chunking."""
    cases = parse_cases()
    app = App()

    @app.route("/")
    def index(event: Event) -> str:
        return VECTOR_PAGE % json.dumps([c.raw.hex() for c in cases])

    server = serve(app)
    result = open_page(
        server.url + "/", until="window.result !== undefined", result="window.result"
    )
    for case, chunkings in zip(cases, result, strict=True):
        expected = [as_dict(m) for m in case.messages]
        for got in chunkings:
            assert got == expected, case.name


@pytest.mark.browser
@pytest.mark.slow
def test_five_tabs_share_one_stream_and_survive_close_and_freeze(
    site: Site,
) -> None:
    """Five tabs hold one server stream; closing or freezing its holder hands over
    with every tab's ids still consecutive: nothing lost, nothing repeated."""
    seen = run_tabs("handover", site)
    assert seen["counts_shared"] == [1] * 5
    assert seen["leaders_before"].count(True) == 1
    assert seen["leaders_after_close"].count(True) == 1
    # The frozen tab's stream is still open on the server until it thaws.
    assert seen["count_while_frozen"] == 2
    assert seen["count_after_thaw"] == 1
    assert seen["leaders_after_thaw"].count(True) == 1
    assert not seen["leaders_after_thaw"][seen["thawed"]]
    for ids in seen["got"]:
        assert consecutive(ids), ids
    assert len(seen["got"]) == 4


@pytest.mark.browser
def test_without_web_locks_each_tab_connects(site: Site) -> None:
    """Where Web Locks are missing, shared tabs fall back to a stream each."""
    seen = run_tabs("no_locks", site)
    assert seen["counts"] == [3] * 5
    assert seen["leaders"] == [False] * 3
    for ids in seen["got"]:
        assert consecutive(ids), ids


@pytest.mark.browser
def test_two_urls_get_two_streams(site: Site) -> None:
    """Sharing is per URL: two streams for two URLs, each tab getting its own."""
    seen = run_tabs("two_urls", site)
    assert seen["counts"] == [2] * 5
    assert seen["leaders"][:2].count(True) == 1
    assert seen["leaders"][2:].count(True) == 1
    for ids in seen["got"]:
        assert consecutive(ids), ids


def page_of(site: Site, stream: str, until: str, shared: bool = False) -> Any:
    assert site.server is not None
    url = f"{site.server.url}/page?url={stream}" + ("&shared=1" if shared else "")
    return open_page(
        url,
        until=until,
        result="({got, resets, stale, opens, presence, last: s.lastEventId,"
        " state: s.readyState})",
    )


@pytest.mark.browser
@pytest.mark.parametrize("shared", [False, True])
def test_onreset_gets_the_channel(site: Site, shared: bool) -> None:
    """A reset event calls onreset with its channel, not onmessage."""
    seen = page_of(site, "/script/reset", "got.length >= 2", shared)
    assert seen["got"] == ["before", "after"]
    assert seen["resets"] == [["news", "5", "9"]]
    assert seen["last"] == "10"


@pytest.mark.browser
@pytest.mark.parametrize("shared", [False, True])
def test_presence_events_carry_their_data(site: Site, shared: bool) -> None:
    """join and leave events reach their handlers with the parsed JSON."""
    seen = page_of(site, "/script/presence", "got.length >= 1", shared)
    assert seen["presence"] == [["join", "ann"], ["join", "bob"], ["leave", "ann"]]


@pytest.mark.browser
@pytest.mark.parametrize("shared", [False, True])
def test_onstale_fires_and_reconnects_from_the_last_id(
    site: Site, shared: bool
) -> None:
    """A stream silent for twice its announced ping is stale: onstale, then a
    reconnect that sends the last id."""
    seen = page_of(site, "/script/silent", "got.length >= 2 && stale >= 1", shared)
    assert seen["got"][:2] == ["event 1", "event 2"]
    assert site.requests["silent"][:2] == [None, "1"]


@pytest.mark.browser
def test_keep_alive_comments_keep_a_stream_fresh(site: Site) -> None:
    """Comments alone count as life: 3 s of pings with a 1 s interval announced
    give no onstale and no reconnect."""
    seen = page_of(site, "/script/pinged", "got.length >= 2")
    assert seen["got"] == ["one", "two"]
    assert seen["stale"] == 0
    assert seen["opens"] == 1
    assert site.requests["pinged"] == [None]


FOLLOW_PAGE = """<!doctype html>
<title>follow</title>
<script type="module">
import * as gsse from "/_gsse/gsse.js";
window.progress = [];
gsse.follow(new URLSearchParams(location.search).get("url"),
            {on: {progress: (e) => progress.push(e.data)}})
  .then((end) => { window.result = {end, progress}; },
        (err) => { window.result = {error: String(err)}; });
</script>
"""


@pytest.mark.browser
def test_follow_resolves_with_the_end_status(site: Site) -> None:
    """follow() gets the run's events, resolves with end's data and stops there."""

    @site.app.route("/follow")
    def follow_page(event: Event) -> str:
        return FOLLOW_PAGE

    assert site.server is not None
    result = open_page(
        f"{site.server.url}/follow?url=/script/run",
        until="window.result !== undefined",
        result="window.result",
    )
    assert result == {"end": {"status": "done"}, "progress": ["1", "2"]}
    gevent.sleep(0.3)  # a wrong client would reconnect after its 50 ms retry
    assert site.requests["run"] == [None]


@pytest.mark.browser
def test_follow_of_an_ended_run_resolves_without_status(site: Site) -> None:
    """A run that already ended (204) resolves with status null, no retries."""

    @site.app.route("/follow")
    def follow_page(event: Event) -> str:
        return FOLLOW_PAGE

    assert site.server is not None
    result = open_page(
        f"{site.server.url}/follow?url=/script/ended",
        until="window.result !== undefined",
        result="window.result",
    )
    assert result == {"end": {"status": None}, "progress": []}
    assert site.requests["ended"] == [None]
