"""app/retry.py: the one backoff loop, driven by an injected sleep and clock (no real waiting)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.errors import VenueRejected, VenueThrottled, VenueUnavailable
from app.retry import Backoff, RetryPolicy, reconnect_forever, retry


class Stop(BaseException):
    """Like cancellation: not an Exception, so no loop retries it."""


class FakeTime:
    """An injected clock and sleep: sleeping moves the clock; every requested delay is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(*errors: Exception, result: str = "ok") -> Callable[[], object]:
    """A call that raises `errors` one by one, then returns `result`; counts its calls."""
    pending = list(errors)
    calls = []

    async def call() -> str:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_backoff_doubles_up_to_the_cap_resets_and_honours_retry_after() -> None:
    backoff = Backoff(RetryPolicy(initial=0.5, factor=2, maximum=4))
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.next_delay() == 0.5
    assert backoff.next_delay(retry_after=7) == 7  # the venue asked for longer
    assert backoff.next_delay(retry_after=0.1) == 2  # never shorter than the backoff
    for bad in ({"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"max_attempts": 0}, {"deadline": -1}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


async def test_retry_returns_after_transient_failures_with_exact_delays() -> None:
    time = FakeTime()
    call = failing(VenueUnavailable("down"), VenueUnavailable("down"))
    seen: list[tuple[int, str, float]] = []
    result = await retry(
        call,  # type: ignore[arg-type]
        policy=RetryPolicy(initial=0.5, max_attempts=5),
        retry_on=VenueUnavailable,
        sleep=time.sleep,
        clock=time.clock,
        on_retry=lambda attempt, exc, delay: seen.append((attempt, str(exc), delay)),
    )
    assert result == "ok"
    assert time.slept == [0.5, 1.0]
    assert seen == [(1, "down", 0.5), (2, "down", 1.0)]


async def test_retry_waits_at_least_the_venues_retry_after() -> None:
    time = FakeTime()
    call = failing(VenueThrottled("slow down", retry_after=7), VenueUnavailable("down"))
    assert await retry(call, sleep=time.sleep, clock=time.clock) == "ok"  # type: ignore[arg-type]
    assert time.slept == [7, 1.0]


async def test_retry_gives_up_after_max_attempts_with_the_last_error() -> None:
    time = FakeTime()
    call = failing(*(VenueUnavailable(f"down {i}") for i in range(10)))
    with pytest.raises(VenueUnavailable, match="down 2"):
        await retry(call, policy=RetryPolicy(max_attempts=3), sleep=time.sleep, clock=time.clock)  # type: ignore[arg-type]
    assert len(call.calls) == 3  # type: ignore[attr-defined]
    assert time.slept == [0.5, 1.0]


async def test_retry_gives_up_rather_than_sleep_past_the_deadline() -> None:
    time = FakeTime()
    call = failing(*(VenueUnavailable("down") for _ in range(10)))
    with pytest.raises(VenueUnavailable):
        await retry(call, policy=RetryPolicy(initial=1, deadline=5), sleep=time.sleep, clock=time.clock)  # type: ignore[arg-type]
    assert time.slept == [1, 2]  # 1 + 2 = 3 s spent; waiting 4 more would end past 5 s
    throttled = failing(VenueThrottled("banned", retry_after=120))
    with pytest.raises(VenueThrottled):
        await retry(throttled, policy=RetryPolicy(deadline=60), sleep=time.sleep, clock=time.clock)  # type: ignore[arg-type]


async def test_retry_raises_other_errors_at_once() -> None:
    time = FakeTime()
    call = failing(VenueRejected("no"))
    with pytest.raises(VenueRejected):
        await retry(call, retry_on=(VenueUnavailable, VenueThrottled), sleep=time.sleep)  # type: ignore[arg-type]
    predicate = failing(VenueUnavailable("maintenance"))
    with pytest.raises(VenueUnavailable):
        await retry(predicate, retry_on=lambda exc: "maintenance" not in str(exc), sleep=time.sleep)  # type: ignore[arg-type]
    assert time.slept == []


async def test_reconnect_forever_resets_after_a_healthy_session_and_honours_retry_after() -> None:
    time = FakeTime()
    sessions: list[int] = []
    failures: list[tuple[str | None, float]] = []
    script: list[tuple[bool, Exception]] = [
        (False, VenueUnavailable("refused")),
        (False, VenueUnavailable("refused")),
        (True, ConnectionError("dropped")),  # connected first: the next wait starts from `initial` again
        (False, VenueThrottled("429", retry_after=9)),
        (True, Stop()),  # not an Exception: ends the loop (as cancellation would)
    ]

    async def session(connected: Callable[[], None]) -> None:
        sessions.append(1)
        was_healthy, error = script.pop(0)
        if was_healthy:
            connected()
        raise error

    with pytest.raises(Stop):
        await reconnect_forever(
            session,
            policy=RetryPolicy(initial=0.5),
            sleep=time.sleep,
            clock=time.clock,
            on_failure=lambda exc, delay: failures.append((str(exc) if exc else None, delay)),
        )
    assert time.slept == [0.5, 1.0, 0.5, 9]
    assert failures == [("refused", 0.5), ("refused", 1.0), ("dropped", 0.5), ("429", 9)]
    assert len(sessions) == 5


async def test_reconnect_forever_gives_up_after_consecutive_failures_when_bounded() -> None:
    time = FakeTime()
    ended: list[int] = []

    async def session(connected: Callable[[], None]) -> None:
        ended.append(1)  # returns without connecting: a clean end counts as a failure

    with pytest.raises(ConnectionError):
        await reconnect_forever(session, policy=RetryPolicy(max_attempts=3), sleep=time.sleep, clock=time.clock)
    assert time.slept == [0.5, 1.0] and len(ended) == 3

    async def refused(connected: Callable[[], None]) -> None:
        raise VenueUnavailable("refused")

    with pytest.raises(VenueUnavailable):
        await reconnect_forever(refused, policy=RetryPolicy(initial=2, deadline=10), sleep=time.sleep, clock=time.clock)
    assert time.slept[2:] == [2, 4]  # 6 s spent; 8 more would end past the 10 s deadline
