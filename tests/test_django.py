"""gsse.django: Django views that stream, under every host, over real sockets.

In-process tests serve tests/apps/django_site.py (a real middleware stack:
GZip, ConditionalGet, Common, sessions, CSRF, auth) with the gsse server and
with a plain pywsgi server (the host-iterated path gunicorn takes too); the
process tests run examples/django_project with ``gsse run``, ``gunicorn -k
gevent`` and ``python manage.py runserver``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

import django  # noqa: E402
import gevent  # noqa: E402
import requests  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.django_site")
django.setup()

import gsse.django  # noqa: E402
import gsse.runs  # noqa: E402
from gsse import Server  # noqa: E402
from gsse import SSEWriter  # noqa: E402
from tests.apps import django_site  # noqa: E402
from tests.helpers import RawStream  # noqa: E402
from tests.helpers import wait_until  # noqa: E402
from tests.procs import REPO  # noqa: E402
from tests.procs import Processes  # noqa: E402
from tests.procs import clean_env  # noqa: E402
from tests.procs import free_port  # noqa: E402
from tests.procs import processes  # noqa: E402

pytestmark = pytest.mark.timeout(90)

PROJECT = REPO / "examples" / "django_project"
Serve = Callable[..., Server]


@pytest.fixture(scope="module", autouse=True)
def database() -> None:
    """The site's tables, in its throwaway SQLite file."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@pytest.fixture(params=["gsse server", "pywsgi"])
def site(request: Any, serve: Serve, pywsgi: Callable[..., int]) -> Callable[..., int]:
    """Start the Django site under one host (with options for the middleware)."""

    def start(**options: Any) -> int:
        app = django_site.application(**options)
        return serve(app).port if request.param == "gsse server" else pywsgi(app)

    return start


def sign_in(port: int, name: str, colour: str) -> str:
    """Sign in through the site; return the Cookie header that carries it."""
    answer = requests.get(
        f"http://127.0.0.1:{port}/sign-in",
        params={"name": name, "colour": colour},
        timeout=10,
    )
    assert answer.status_code == 200
    return "; ".join(f"{k}={v}" for k, v in answer.cookies.items())


def test_a_view_streams_through_the_whole_middleware_stack(
    site: Callable[..., int],
) -> None:
    """A stream passes GZip, ConditionalGet and Common middleware unbuffered."""
    port = site()
    headers = {"Accept-Encoding": "gzip, deflate"}
    with RawStream(port, "/ticks?n=3", headers=headers) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-stream"] == "ticks"
        assert stream.headers.get("content-encoding", "") == ""  # not gzip
        assert "content-length" not in stream.headers
        assert "etag" not in stream.headers
        messages = stream.events(3)
        stream.read_to_end()
        assert stream.ended
    assert [m.data for m in messages] == ["tick 0", "tick 1", "tick 2"]
    assert [m.id for m in messages] == ["0", "1", "2"]


def test_request_user_and_session_read_in_the_view_reach_the_callback(
    site: Callable[..., int],
) -> None:
    """request.user and the session, read in the view, are what the callback sends."""
    port = site()
    with RawStream(port, "/whoami") as anonymous:
        assert anonymous.status == 403  # an ordinary response: no stream
    cookie = sign_in(port, "alice", "green")
    with RawStream(port, "/whoami", headers={"Cookie": cookie}) as stream:
        (hello,) = stream.events(1)
    assert hello.event == "hello"
    assert json.loads(hello.data) == {"user": "alice", "colour": "green"}


def test_csrf_guards_the_publishing_view_and_the_event_reaches_subscribers(
    site: Callable[..., int],
) -> None:
    """A POST without the CSRF token is 403; with it, subscribers get the event."""
    port = site()
    base = f"http://127.0.0.1:{port}"
    with RawStream(port, "/news") as news:
        refused = requests.post(base + "/publish", data={"text": "x"}, timeout=10)
        assert refused.status_code == 403
        page = requests.get(base + "/page", timeout=10)
        token = page.text.strip().split("=", 1)[1]
        accepted = requests.post(
            base + "/publish",
            data={"text": "hello", "csrfmiddlewaretoken": token},
            cookies=page.cookies,
            timeout=10,
        )
        assert accepted.status_code == 200
        (message,) = news.events(1)
    assert (message.event, message.data, message.id) == (
        "headline",
        "hello",
        accepted.text,
    )


def test_a_reconnecting_subscriber_gets_what_it_missed(
    site: Callable[..., int],
) -> None:
    """subscribe() replays the channel after Last-Event-ID, then goes live."""
    port = site()
    first = django_site.broker.publish("news", "one")
    django_site.broker.publish("news", "two")
    django_site.broker.publish("news", "three")
    with RawStream(port, "/news", headers={"Last-Event-ID": first}) as stream:
        messages = stream.events(2)
    assert [m.data for m in messages] == ["two", "three"]


def test_subscribe_with_snapshot_sends_each_keys_newest_event_first(
    site: Callable[..., int],
) -> None:
    """gsse.django.subscribe(..., snapshot=True), on a compacted channel."""
    port = site()
    django_site.broker.publish("news", "a1", key="django-a")
    b1 = django_site.broker.publish("news", "b1", key="django-b")
    a2 = django_site.broker.publish("news", "a2", key="django-a")
    with RawStream(port, "/news?snapshot=1") as stream:
        messages = stream.events(2)
    assert [(m.id, m.data) for m in messages] == [(b1, "b1"), (a2, "a2")]


def test_follow_streams_a_run_then_204_after_its_end_and_404_for_unknown(
    site: Callable[..., int],
) -> None:
    """gsse.django.follow: the whole run then ``end``; 204 and 404 as documented."""
    port = site()

    def produce(writer: gsse.runs.RunWriter) -> None:
        for word in ("a", "b", "c"):
            writer.send_event(word, event="token")
            gevent.sleep(0.01)

    run = django_site.runs.start(produce)
    with RawStream(port, f"/runs/{run.id}") as stream:
        assert stream.status == 200
        stream.read_to_end(30)
        messages = stream.decoder.feed(stream.body)
    assert [(m.event, m.data) for m in messages] == [
        ("token", "a"),
        ("token", "b"),
        ("token", "c"),
        ("end", '{"status":"done"}'),
    ]
    headers = {"Last-Event-ID": messages[-1].id, "Connection": "close"}
    with RawStream(port, f"/runs/{run.id}", headers=headers) as stream:
        assert stream.status == 204
    with RawStream(port, "/runs/" + "x" * 22, headers={"Connection": "close"}) as r:
        assert r.status == 404


@pytest.mark.parametrize("blocking", ["0", "1"], ids=["greenlet", "pool thread"])
def test_the_callbacks_database_connection_is_closed_when_it_ends(
    site: Callable[..., int], blocking: str
) -> None:
    """The connection a callback opened is closed once the callback returns."""
    port = site()
    django_site.seen.clear()
    with RawStream(port, f"/db?blocking={blocking}") as stream:
        (message,) = stream.events(1)
        stream.read_to_end()
    assert "users" in json.loads(message.data)
    assert django_site.seen["open_in_callback"] is True
    connection = django_site.seen["connection"]
    assert wait_until(lambda: connection.connection is None)


def test_head_gets_the_headers_and_no_stream(site: Callable[..., int]) -> None:
    """HEAD answers with the stream's headers and never runs the callback."""
    port = site()
    django_site.seen.clear()
    with RawStream(port, "/ticks", method="HEAD") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
    gevent.sleep(0.1)
    assert "ticks ran" not in django_site.seen


def test_the_middlewares_limits_answer_with_django_responses(
    site: Callable[..., int], caplog: pytest.LogCaptureFixture
) -> None:
    """Over max_streams: a 503 with Retry-After, logged at INFO, not as an error."""
    caplog.set_level(logging.INFO)
    port = site(max_streams=1, retry_after=7)
    with RawStream(port, "/forever") as first:
        first.events(1)
        with RawStream(port, "/forever") as second:
            assert second.status == 503
            assert second.headers["retry-after"] == "7"
            assert b"limit of open streams" in second.read_until(b"streams")
    assert "refused a stream" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_async_callbacks_are_refused_by_gsse_django() -> None:
    """gsse.django.stream refuses an async def callback with a TypeError."""

    async def feed(writer: SSEWriter) -> None:
        writer.send_event("never")

    with pytest.raises(TypeError, match="plain def"):
        gsse.django.stream(feed)


# -- the example project under real hosts ------------------------------------


def project_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        NOTES_DB=str(tmp_path / "notes.sqlite3"),
        DJANGO_SETTINGS_MODULE="project.settings",
    )


def migrate(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=PROJECT,
        env=project_env(tmp_path),
        check=True,
        timeout=60,
    )


def start_project(procs: Processes, tmp_path: Path, host: str) -> int:
    """Run examples/django_project under ``host``; return its port."""
    migrate(tmp_path)
    port = free_port()
    env = project_env(tmp_path)
    if host == "gsse run":
        procs.gsse(
            "run", "project.wsgi:application", "--port", str(port),
            cwd=PROJECT, env=env,
        ).wait_port(port, timeout=30)  # fmt: skip
    else:
        procs.start(
            [sys.executable, "-m", "gunicorn", "-k", "gevent", "--bind",
             f"127.0.0.1:{port}", "project.wsgi:application"],
            cwd=PROJECT, env=env,
        ).wait_port(port, timeout=30)  # fmt: skip
    return port


def publish_note(port: int, text: str) -> requests.Response:
    """Publish a note as a browser form would: CSRF cookie and token."""
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.get(base + "/", timeout=10)
    return session.post(
        base + "/notes",
        data={"text": text},
        headers={
            "X-CSRFToken": session.cookies["csrftoken"],
            "Accept": "application/json",
        },
        timeout=10,
    )


@pytest.mark.parametrize("host", ["gsse run", "gunicorn -k gevent"])
def test_the_example_project_streams_under_real_hosts(
    tmp_path: Path, host: str
) -> None:
    """The project's feed carries a published note under gsse run and gunicorn."""
    with processes(tmp_path) as procs:
        port = start_project(procs, tmp_path, host)
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "gsse.connect(" in page.text
        module = requests.get(f"http://127.0.0.1:{port}/_gsse/gsse.js", timeout=10)
        assert module.headers["Content-Type"].startswith("text/javascript")
        with RawStream(port, "/events") as feed:
            published = publish_note(port, "hello from " + host)
            assert published.status_code == 201
            (message,) = feed.events(1, timeout=15)
        with RawStream(port, "/me/events") as me:
            (hello,) = me.events(1, timeout=15)
    assert message.event == "note" and message.id == published.json()["id"]
    assert json.loads(message.data)["text"] == "hello from " + host
    assert json.loads(hello.data) == {"user": "anonymous", "notes": 1}


def test_runserver_answers_a_stream_with_a_clear_500(tmp_path: Path) -> None:
    """Under runserver pages work, and a stream is a 500 saying what to run."""
    migrate(tmp_path)
    port = free_port()
    with processes(tmp_path) as procs:
        server = procs.start(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}",
             "--noreload"],
            cwd=PROJECT, env=project_env(tmp_path),
        )  # fmt: skip
        server.wait_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/", timeout=10).status_code == 200
        refused = requests.get(base + "/events", timeout=10)
        assert refused.status_code == 500
        assert "runserver" in refused.text
        assert "gsse run project.wsgi:application" in refused.text
        assert "gunicorn -k gevent project.wsgi:application" in refused.text
        server.wait_log("gsse cannot stream /events")


def test_the_gsse_server_streams_a_django_response_on_its_fast_path(
    serve: Serve,
) -> None:
    """Under the gsse server a Django stream goes straight to the socket."""
    from gsse.transport import SocketTransport

    server = serve(django_site.application())
    with RawStream(server.port, "/forever") as stream:
        stream.events(1)
        streams = list(server.registry._streams)
        assert [type(s.transport) for s in streams] == [SocketTransport]
