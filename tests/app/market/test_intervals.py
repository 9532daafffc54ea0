"""Candle bucket arithmetic: every interval, and weeks aligned to Monday 00:00 UTC like Binance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.market.intervals import INTERVAL_MS, WEEK_MS, bucket_start, interval_ms
from app.market.models import Interval


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def as_dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, tz=UTC)


def test_every_interval_has_a_length() -> None:
    assert {i: interval_ms(i) for i in Interval} == {
        Interval.M1: 60_000,
        Interval.M5: 300_000,
        Interval.H1: 3_600_000,
        Interval.D1: 86_400_000,
        Interval.W1: 604_800_000,
    }


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (Interval.M1, (2026, 11, 25, 13, 47)),
        (Interval.M5, (2026, 11, 25, 13, 45)),
        (Interval.H1, (2026, 11, 25, 13, 0)),
        (Interval.D1, (2026, 11, 25, 0, 0)),
        (Interval.W1, (2026, 11, 23, 0, 0)),  # 2026-11-23 is a Monday
    ],
)
def test_bucket_start_of_a_wednesday_afternoon(interval: Interval, expected: tuple[int, ...]) -> None:
    ts = ms(2026, 11, 25, 13, 47, 31) + 123
    assert bucket_start(ts, interval) == ms(*expected)


def test_weeks_start_on_monday_midnight_utc() -> None:
    monday = ms(2026, 11, 23)
    assert as_dt(monday).weekday() == 0
    assert bucket_start(monday, Interval.W1) == monday
    assert bucket_start(monday + WEEK_MS - 1, Interval.W1) == monday  # Sunday 23:59:59.999
    assert bucket_start(monday - 1, Interval.W1) == monday - WEEK_MS  # the Sunday before


@given(ts=st.integers(min_value=0, max_value=ms(2100, 1, 1)), interval=st.sampled_from(list(Interval)))
def test_bucket_contains_the_timestamp_and_is_aligned(ts: int, interval: Interval) -> None:
    start = bucket_start(ts, interval)
    assert start <= ts < start + INTERVAL_MS[interval]
    opened = as_dt(start)
    if interval is Interval.W1:
        assert (opened.weekday(), opened.hour, opened.minute, opened.second) == (0, 0, 0, 0)
    else:
        assert start % INTERVAL_MS[interval] == 0
    assert bucket_start(start, interval) == start  # idempotent
