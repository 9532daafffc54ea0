"""Bounded aggregates behind MarketState: one candle series per interval and the rolling 24 h window."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice

from app.market.intervals import DAY_MS, MINUTE_MS, bucket_start, interval_ms
from app.market.models import Candle, Interval

ZERO = Decimal(0)


class CandleSeries:
    """Candles of one symbol and interval, oldest first; the newest one is live. Never more than `kept`."""

    __slots__ = ("_candles", "_size", "interval")

    def __init__(self, interval: Interval, kept: int) -> None:
        self.interval = interval
        self._size = interval_ms(interval)
        self._candles: deque[Candle] = deque(maxlen=kept)

    def __len__(self) -> int:
        return len(self._candles)

    @property
    def kept(self) -> int:
        return self._candles.maxlen or 1

    def add_trade(self, price: Decimal, qty: Decimal, ts: int) -> None:
        """Fold one trade in: update the live candle, or open a new one when `ts` crossed its boundary."""
        start = bucket_start(ts, self.interval)
        candles = self._candles
        if not candles:
            candles.append(Candle(start, price, price, price, price, qty))
            return
        live = candles[-1]
        if start == live.t:
            candles[-1] = Candle(live.t, live.o, max(live.h, price), min(live.l, price), price, live.v + qty)
        elif start > live.t:
            # Quiet buckets become flat zero-volume candles (as on Binance), so open times stay contiguous.
            # Only the newest `kept` can survive, so a long silence costs at most `kept` appends.
            kept = candles.maxlen or 1
            first_gap = max(live.t + self._size, start - (kept - 1) * self._size)
            for t in range(first_gap, start, self._size):
                candles.append(Candle(t, live.c, live.c, live.c, live.c, ZERO))
            candles.append(Candle(start, price, price, price, price, qty))
        # else: a late trade for a closed candle; closed candles are final, as on an exchange.

    def backfill(self, history: Sequence[Candle]) -> None:
        """Install history (any order); it replaces overlapping candles, newer live candles are kept."""
        if not history:
            return
        ordered = sorted(history, key=lambda c: c.t)
        newest = ordered[-1].t
        newer = [c for c in self._candles if c.t > newest]
        self._candles.clear()
        self._candles.extend(ordered)  # the deque's maxlen keeps only the newest
        self._candles.extend(newer)

    def last(self, limit: int) -> list[Candle]:
        """The newest `limit` candles, oldest first."""
        if limit <= 0:
            return []
        return list(islice(self._candles, max(0, len(self._candles) - limit), None))


@dataclass(slots=True)
class _Minute:
    t: int
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741
    v: Decimal


@dataclass(frozen=True, slots=True)
class DayStats:
    """Open, high, low and base volume over the rolling 24 h window."""

    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal


class Rolling24h:
    """Rolling 24 h statistics from one-minute buckets: at most 1440 of them, O(1) amortized per trade.

    The window is market time: the 1440 minutes ending with the newest trade's minute (so it rolls with the
    feed's timestamps, not the wall clock). Volume is kept as a running sum; high/low are kept incrementally
    and recomputed only when an extreme leaves the window.
    """

    __slots__ = ("_buckets", "_extremes_stale", "_high", "_low", "_volume")

    BUCKETS = DAY_MS // MINUTE_MS

    def __init__(self) -> None:
        self._buckets: deque[_Minute] = deque()
        self._volume = ZERO
        self._high = ZERO
        self._low = ZERO
        self._extremes_stale = False

    def __len__(self) -> int:
        return len(self._buckets)

    def add_trade(self, price: Decimal, qty: Decimal, ts: int) -> None:
        """Count one trade in its minute; trades older than the window or in a missing minute are dropped."""
        minute = bucket_start(ts, Interval.M1)
        buckets = self._buckets
        if buckets and minute <= buckets[-1].t:
            bucket = next((b for b in reversed(buckets) if b.t <= minute), None)
            if bucket is None or bucket.t != minute:
                return
            bucket.h = max(bucket.h, price)
            bucket.l = min(bucket.l, price)
            bucket.v += qty
        else:
            buckets.append(_Minute(minute, price, price, price, qty))
            self._evict_before(minute)
        self._volume += qty
        if self._extremes_stale:
            return  # recomputed on the next read
        if len(buckets) == 1:
            self._high, self._low = buckets[0].h, buckets[0].l
        else:
            self._high = max(self._high, price)
            self._low = min(self._low, price)

    def seed(self, minutes: Sequence[Candle]) -> None:
        """Load 1m history (e.g. from a backfill); minutes newer than the history are kept."""
        if not minutes:
            return
        ordered = sorted(minutes, key=lambda c: c.t)
        newest = ordered[-1].t
        newer = [b for b in self._buckets if b.t > newest]
        self._buckets.clear()
        self._buckets.extend(_Minute(c.t, c.o, c.h, c.l, c.v) for c in ordered if c.t > newest - DAY_MS)
        self._buckets.extend(newer)
        self._evict_before(self._buckets[-1].t)
        self._volume = sum((b.v for b in self._buckets), ZERO)
        self._extremes_stale = True

    def minutes(self) -> list[Candle]:
        """The window's one-minute buckets, oldest first, in the form `seed` takes (a replica's snapshot). The
        close is not tracked here: it is the bucket's open (seed ignores it)."""
        return [Candle(b.t, b.o, b.h, b.l, b.o, b.v) for b in self._buckets]

    def stats(self) -> DayStats | None:
        """The window's open/high/low/volume, or None before the first trade."""
        if not self._buckets:
            return None
        if self._extremes_stale:
            self._high = max(b.h for b in self._buckets)
            self._low = min(b.l for b in self._buckets)
            self._extremes_stale = False
        return DayStats(self._buckets[0].o, self._high, self._low, self._volume)

    def _evict_before(self, newest_minute: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0].t <= newest_minute - DAY_MS:
            old = buckets.popleft()
            self._volume -= old.v
            if old.h >= self._high or old.l <= self._low:
                self._extremes_stale = True
