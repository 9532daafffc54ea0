"""The one retry/backoff loop (STYLE.md §11): exponential delays, Retry-After, bounded attempts, injectable time.

Two entry points share one `Backoff`:

- `retry(call, ...)` — call until it succeeds; a failure that `retry_on` accepts waits and tries again, anything
  else (and the last failure once `max_attempts` or `deadline` is spent) is raised unchanged. It is a loop, never
  recursion.
- `reconnect_forever(session, ...)` — for long-lived connections (streams): run `session(connected)` again after
  every failure until cancelled. The session calls `connected()` once it is healthy (subscribed, or a message
  arrived), which resets the delays to `initial`; `on_failure` is the venue's hook to log and mark the stream
  down. With `max_attempts` / `deadline` the loop gives up after that many *consecutive* failures.

Delays are deterministic (no jitter: one client per account and per feed, so there is no herd to spread, and tests
can assert exact sequences): `initial * factor**n`, capped at `maximum`. A `VenueThrottled` failure waits at least
its `retry_after` (Binance's Retry-After). `sleep` and `clock` are arguments, so tests run the loops without real
waiting::

    from app.retry import RetryPolicy, retry

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(initial=0.5, maximum=8.0, max_attempts=4, deadline=30.0)
    balances = await retry(
        venue.balances,                                  # any zero-argument coroutine function
        policy=policy,
        retry_on=(VenueUnavailable, VenueThrottled),     # classes, or a predicate on the exception
        sleep=fake_sleep,                                # default asyncio.sleep
        clock=lambda: 0.0,                               # default time.monotonic (seconds)
        on_retry=lambda attempt, exc, delay: log.warning("attempt %d failed; retry in %.1fs", attempt, delay),
    )
    # failing twice then succeeding sleeps [0.5, 1.0]; a VenueThrottled(retry_after=7) in between sleeps 7.

Why not tenacity: it fits one-shot retries, but its clock is `time.monotonic` with no injection point (so a
deadline cannot be tested without real time or monkeypatching), and a reconnect loop that resets its delays after
every healthy session does not map onto its attempt counter without re-entering it per session. The whole need
is about a hundred lines; a dependency would not make them shorter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from app.errors import VenueThrottled

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
OnRetry = Callable[[int, Exception, float], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait between attempts and when to give up.

    `initial`, `factor`, `maximum`: the n-th consecutive failure waits `min(maximum, initial * factor**(n-1))`
    seconds (or the venue's retry_after, if longer). `max_attempts`: give up when that many attempts failed in a
    row (None: never). `deadline`: give up rather than sleep past this many seconds after the first attempt (for
    reconnect_forever: after the first attempt since the last healthy connection) (None: never)."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    max_attempts: int | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.deadline is not None and self.deadline < 0:
            raise ValueError("deadline must be >= 0")


RECONNECT = RetryPolicy()  # streams: retry forever, 0.5 s doubling to 30 s
ONE_CALL = RetryPolicy(max_attempts=5)  # a single request: five attempts (0.5 + 1 + 2 + 4 s of waiting)


class Backoff:
    """The delays of one policy: `next_delay()` after each failure, `reset()` after a success."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RECONNECT
        self.failures = 0  # consecutive failures since the last reset

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return the wait before the next attempt (at least `retry_after`)."""
        p = self.policy
        delay = min(p.maximum, p.initial * p.factor ** min(self.failures, 64))
        self.failures += 1
        return max(delay, retry_after or 0.0)

    def reset(self) -> None:
        self.failures = 0


def retry_after_of(exc: BaseException) -> float | None:
    """The wait the venue asked for (VenueThrottled.retry_after), else None."""
    return exc.retry_after if isinstance(exc, VenueThrottled) else None


def _accepts(retry_on: RetryOn, exc: BaseException) -> bool:
    if isinstance(retry_on, type | tuple):
        return isinstance(exc, retry_on)
    return retry_on(exc)


def _spent(backoff: Backoff, started: float, now: float, delay: float) -> bool:
    policy = backoff.policy
    if policy.max_attempts is not None and backoff.failures >= policy.max_attempts:
        return True
    return policy.deadline is not None and now + delay - started > policy.deadline


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy = ONE_CALL,
    retry_on: RetryOn = Exception,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    on_retry: OnRetry | None = None,
) -> T:
    """Await `call()` until it returns; see the module docstring. `on_retry(attempt, exc, delay)` runs before
    each wait (attempt counts from 1). Cancellation is never retried."""
    backoff = Backoff(policy)
    started = clock()
    while True:
        try:
            return await call()
        except Exception as exc:
            if not _accepts(retry_on, exc):
                raise
            delay = backoff.next_delay(retry_after_of(exc))
            if _spent(backoff, started, clock(), delay):
                raise
            if on_retry is not None:
                on_retry(backoff.failures, exc, delay)
        await sleep(delay)


async def reconnect_forever(
    session: Callable[[Callable[[], None]], Awaitable[object]],
    *,
    policy: RetryPolicy = RECONNECT,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    on_failure: Callable[[Exception | None, float], None] | None = None,
) -> NoReturn:
    """Run `session(connected)` again and again until cancelled; see the module docstring.

    A session that returns (the connection ended cleanly) counts as a failure too. `on_failure(exc, delay)`
    (exc is None for a clean end) runs before each wait; it must not log library exception text (it may carry
    signed URLs). When `max_attempts` or `deadline` is set and spent, the last error is raised (a clean end
    raises ConnectionError)."""
    backoff = Backoff(policy)
    started: float | None = None

    def connected() -> None:
        nonlocal started
        backoff.reset()
        started = None

    while True:
        if started is None:
            started = clock()
        error: Exception | None = None
        try:
            await session(connected)
        except Exception as exc:
            error = exc
        now = clock()
        if started is None:  # connected() during this session: the run of failures starts now
            started = now
        delay = backoff.next_delay(retry_after_of(error) if error is not None else None)
        if _spent(backoff, started, now, delay):
            raise error if error is not None else ConnectionError("session ended")
        if on_failure is not None:
            on_failure(error, delay)
        await sleep(delay)
