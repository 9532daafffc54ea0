"""Reconnect with exponential backoff, and the event plumbing of a long-lived stream session.

`reconnect_forever` is the one reconnect loop: a venue supplies the session coroutine (connect, subscribe,
deliver events until the connection fails) and the loop restarts it, sleeping with the injected `sleep`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from app.errors import VenueError, VenueThrottled

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class Backoff:
    """Exponential delays: initial, initial*factor, ... capped at maximum; `reset` after a healthy connection.
    Deterministic (no jitter): one client per account, so there is no thundering herd to spread."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 60.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


async def reconnect_forever(
    session: Callable[[Callable[[], None]], Awaitable[None]],
    *,
    sleep: Sleep,
    backoff: Backoff,
    name: str,
) -> NoReturn:
    """Run `session(connected)` until cancelled, restarting it after every failure. The session calls
    `connected()` once it is subscribed, which resets the backoff. A throttle answer waits at least its
    retry_after."""
    while True:
        try:
            await session(backoff.reset)
            delay, reason = backoff.next_delay(), "session ended"
        except asyncio.CancelledError:
            raise
        except VenueThrottled as exc:
            delay, reason = max(backoff.next_delay(), exc.retry_after), exc.message
        except VenueError as exc:
            delay, reason = backoff.next_delay(), exc.message
        except Exception as exc:  # any failure of the connection: reconnect is the remedy
            # Only the class name: library messages may carry request URLs.
            delay, reason = backoff.next_delay(), type(exc).__name__
        log.warning("%s dropped (%s); reconnecting in %.1fs", name, reason, delay)
        await sleep(delay)


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
