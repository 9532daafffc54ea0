"""Candle interval arithmetic: fixed-length UTC buckets; weeks start Monday 00:00 UTC (as on Binance)."""

from __future__ import annotations

from app.market.models import Interval

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

# The Unix epoch (1970-01-01) was a Thursday; the first Monday 00:00 UTC came four days later.
FIRST_MONDAY_MS = 4 * DAY_MS

INTERVAL_MS: dict[Interval, int] = {
    Interval.M1: MINUTE_MS,
    Interval.M5: 5 * MINUTE_MS,
    Interval.H1: HOUR_MS,
    Interval.D1: DAY_MS,
    Interval.W1: WEEK_MS,
}


def interval_ms(interval: Interval) -> int:
    """Length of one candle of `interval` in milliseconds (every supported interval has a fixed length)."""
    return INTERVAL_MS[interval]


def bucket_start(ts_ms: int, interval: Interval) -> int:
    """Open time (ms, UTC) of the candle of `interval` that contains `ts_ms`."""
    size = INTERVAL_MS[interval]
    origin = FIRST_MONDAY_MS if interval is Interval.W1 else 0
    # Python's % is non-negative for a positive divisor, so this also holds before the epoch.
    return ts_ms - (ts_ms - origin) % size
