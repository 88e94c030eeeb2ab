"""Ctrl-C stops every example at once, each stream ending cleanly.

Each example runs with its documented command and a 60 s grace period; a
client holds a stream open when SIGINT arrives. The stream must end by the
example's own doing (its ``writer.shutting_down`` path, or the end of a
channel subscription), never by the grace deadline, which the server logs.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.examples.support import example_command
from tests.examples.support import example_names
from tests.examples.support import start_example
from tests.examples.support import start_redis
from tests.helpers import RawStream
from tests.procs import processes

#: What the server logs when the grace deadline had to close streams.
DEADLINE = "still open after the grace period"


@dataclass
class Case:
    """Where an example streams, and how its stream shows it is alive and ends."""

    path: str
    #: The event type to wait for before Ctrl-C (None: the headers are enough).
    first: str | None
    #: The event the example's shutting_down path sends (None: it sends none).
    goodbye: str | None
    login: bool = False
    redis: bool = False
    #: A form to POST to ``/ask`` first; its JSON ``id`` fills ``{id}`` in path.
    ask: dict[str, str] | None = None


CASES = {
    "counter": Case("/events", "tick", "bye"),
    "clock": Case("/time", "time", "bye"),
    "progress": Case("/job?steps=100", "progress", "stopped"),
    "secure": Case("/events", "time", "bye", login=True),
    "chat": Case("/rooms/lobby/events", None, None),
    "assistant": Case("/runs/{id}", "token", None, ask={"question": "hi"}),
    "online": Case("/rooms/lobby/events?name=ann", "join", None),
    "dashboard": Case("/metrics/stream", "sample", None),
    "flask_legacy": Case("/feed", None, None),
    "price_board": Case("/prices", None, None),
    "redis_workers": Case("/board", "hello", None, redis=True),
}


def test_every_example_has_a_shutdown_case() -> None:
    """A new example gets a Ctrl-C test too."""
    assert sorted(CASES) == example_names()


def session_cookie(port: int) -> str:
    with RawStream(port, "/login", headers={"Connection": "close"}) as login:
        assert login.status == 200
        return login.headers["set-cookie"].split(";", 1)[0]


def ask(port: int, form: dict[str, str]) -> str:
    """POST ``form`` to the example's ``/ask``; the run id it answers."""
    reply = requests.post(f"http://127.0.0.1:{port}/ask", data=form, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(CASES))
def test_ctrl_c_stops_the_example_at_once(name: str, tmp_path: Path) -> None:
    """SIGINT with a stream open: it ends cleanly by the example itself; exit 0."""
    case = CASES[name]
    if case.redis:
        pytest.importorskip("redis")
    with processes(tmp_path) as procs:
        extra: list[str] = []
        if example_command(name)[:2] == ["gsse", "run"]:
            extra += ["--graceful-timeout", "60"]
        if case.redis:
            extra += ["--broker", f"redis://127.0.0.1:{start_redis(procs)}/0"]
        proc, port = start_example(procs, name, *extra)
        headers = {"Cookie": session_cookie(port)} if case.login else {}
        path = case.path
        if case.ask is not None:
            path = path.format(id=ask(port, case.ask))
        with RawStream(port, path, headers=headers, timeout=30) as stream:
            assert stream.status == 200
            if case.first is not None:
                (message,) = stream.events(1, timeout=20)
                assert message.event == case.first
            # (The access line is written when the stream ends, so the 200
            # and the first event are what says the stream is open.)
            proc.send(signal.SIGINT)
            stream.read_to_end(50)
            assert stream.ended and not stream.cut, stream.body[-300:]
        assert proc.wait(50) == 0, proc.log
        assert DEADLINE not in proc.log
        if case.goodbye is not None:
            assert f"event: {case.goodbye}\n".encode() in stream.body
