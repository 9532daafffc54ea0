"""The event plumbing of a long-lived user-data stream session (the reconnect loop around it is app/retry.py).

`run_forever` keeps a ccxt.pro watcher armed; `next_item` hands out the raw events a session queued, and raises the
watcher's error once the queue is drained, so events received before a drop are still delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, TypeVar

T = TypeVar("T")


async def run_forever(call: Callable[[], Awaitable[object]]) -> NoReturn:
    """Await `call()` again and again; ends only by raising (used to keep ccxt.pro watchers armed)."""
    while True:
        await call()


async def next_item(queue: asyncio.Queue[T], watchers: Sequence[asyncio.Task[NoReturn]]) -> T:
    """The next queued item; raises the error of a watcher that ended (the connection failed) once the
    queue is drained, so events received before a drop are still delivered."""
    if not queue.empty():
        return queue.get_nowait()
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait([getter, *watchers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter in done:
        return getter.result()
    for watcher in watchers:
        if watcher.done():
            watcher.result()  # raises the watcher's error
    raise ConnectionError("stream watcher stopped")
