"""The benchmark contract with sse-starlette on uvicorn (uvloop, httptools).

The usual async way: an ``EventSourceResponse`` over an async generator per
stream, an ``asyncio.Queue`` per channel subscriber. Run:
``python starlette_app.py PORT``. Routes: see gsse_app.py.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from sse_starlette.sse import EventSourceResponse
from sse_starlette.sse import ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

subscribers: set[asyncio.Queue[ServerSentEvent]] = set()
tasks: set[asyncio.Task[Any]] = set()


def now_us() -> int:
    return int(time.time() * 1_000_000)


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def idle(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data=str(now_us()))
        while True:
            await asyncio.sleep(3600)

    return EventSourceResponse(events())


async def sub(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[ServerSentEvent] = asyncio.Queue()

    async def events() -> AsyncIterator[ServerSentEvent]:
        subscribers.add(queue)
        try:
            yield ServerSentEvent(comment="ok")
            while True:
                yield await queue.get()
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(events())


async def publisher(rate: float, seconds: float, single: bool = False) -> None:
    count = int(rate * seconds)
    # single: one publish per wake-up, never a burst to catch up.
    burst = 1 if single else count
    start = time.time()
    stop_by = time.monotonic() + seconds + 10
    i = 0
    while i < count and time.monotonic() < stop_by:
        now = time.time()
        woke_at = i
        while i < count and i - woke_at < burst:
            due = start + i / rate
            if due > now:
                break
            event = ServerSentEvent(data=str(int(due * 1_000_000)), id=str(i + 1))
            for queue in list(subscribers):
                queue.put_nowait(event)
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.time()))


async def publish(request: Request) -> PlainTextResponse:
    args = request.query_params
    task = asyncio.create_task(
        publisher(
            float(args["rate"]), float(args["seconds"]), args.get("single") == "1"
        )
    )
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return PlainTextResponse("ok")


async def tick(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        for _ in range(36_000):
            yield ServerSentEvent(data=str(now_us()))
            await asyncio.sleep(0.1)

    return EventSourceResponse(events())


app = Starlette(
    routes=[
        Route("/ping", ping),
        Route("/idle", idle),
        Route("/sub", sub),
        Route("/publish", publish),
        Route("/tick", tick),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
