"""MarketState: candles driven by trade timestamps, rolling 24 h stats, bounded memory, isolated subscribers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.market.aggregate import Rolling24h
from app.market.intervals import DAY_MS, HOUR_MS, MINUTE_MS, WEEK_MS, interval_ms
from app.market.models import Candle, Depth, Interval, Trade
from app.market.state import MarketState

D = Decimal
SYM = "BTCUSDT"


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


T0 = ms(2026, 11, 25, 10, 0)  # a Wednesday


def trade(price: str | Decimal, ts: int, qty: str = "1", side: str = "BUY", symbol: str = SYM) -> Trade:
    return Trade(symbol, D(price), D(qty), side, ts)


class FakeClock:
    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def state() -> MarketState:
    return MarketState([SYM, "ETHUSDT"], clock=FakeClock())


def test_unknown_symbol_reads_empty_and_writes_are_ignored(state: MarketState) -> None:
    seen: list[str] = []
    state.subscribe(seen.append)
    state.apply_trade(trade("1", T0, symbol="DOGEUSDT"))
    state.apply_depth(Depth("DOGEUSDT", ((D(1), D(1)),), ((D(2), D(1)),), T0))
    assert "DOGEUSDT" not in state.symbols
    assert state.ticker("DOGEUSDT") is None
    assert state.candles("DOGEUSDT", Interval.M1) == []
    assert state.depth("DOGEUSDT") is None
    assert state.trades("DOGEUSDT") == []
    assert seen == []
    assert state.last_update_ms() is None


def test_known_symbol_without_data_has_no_ticker(state: MarketState) -> None:
    assert state.symbols == (SYM, "ETHUSDT")
    assert state.ticker(SYM) is None
    assert state.candles(SYM, Interval.H1) == []


def test_live_candle_updates_in_place_then_rolls_over_at_the_minute(state: MarketState) -> None:
    state.apply_trade(trade("100", T0 + 5_000, "1"))
    state.apply_trade(trade("105", T0 + 30_000, "2"))
    state.apply_trade(trade("95", T0 + 59_999, "0.5"))
    assert state.candles(SYM, Interval.M1) == [Candle(T0, D(100), D(105), D(95), D(95), D("3.5"))]

    state.apply_trade(trade("101", T0 + MINUTE_MS, "4"))  # exactly on the boundary: a new candle
    candles = state.candles(SYM, Interval.M1)
    assert candles == [
        Candle(T0, D(100), D(105), D(95), D(95), D("3.5")),
        Candle(T0 + MINUTE_MS, D(101), D(101), D(101), D(101), D(4)),
    ]
    # Longer intervals keep one live candle that absorbed all four trades.
    for interval, opened in ((Interval.M5, T0), (Interval.H1, T0), (Interval.D1, ms(2026, 11, 25))):
        assert state.candles(SYM, interval) == [Candle(opened, D(100), D(105), D(95), D(101), D("7.5"))]


def test_hour_boundary_rolls_minute_five_minute_and_hour_candles_but_not_the_day(state: MarketState) -> None:
    state.apply_trade(trade("100", T0 + HOUR_MS - 1))  # 10:59:59.999
    state.apply_trade(trade("110", T0 + HOUR_MS))  # 11:00:00.000
    for interval in (Interval.M1, Interval.M5, Interval.H1):
        opens = [c.t for c in state.candles(SYM, interval)]
        assert opens == [T0 + HOUR_MS - interval_ms(interval), T0 + HOUR_MS]
    assert [c.t for c in state.candles(SYM, Interval.D1)] == [ms(2026, 11, 25)]


def test_weekly_candles_open_on_monday_midnight_utc(state: MarketState) -> None:
    monday = ms(2026, 11, 23)
    state.apply_trade(trade("100", monday - 1))  # Sunday 23:59:59.999
    state.apply_trade(trade("120", monday))
    state.apply_trade(trade("90", ms(2026, 11, 29, 23, 59)))  # still the same week
    weeks = state.candles(SYM, Interval.W1)
    assert [c.t for c in weeks] == [monday - WEEK_MS, monday]
    assert weeks[-1] == Candle(monday, D(120), D(120), D(90), D(90), D(2))


def test_quiet_minutes_become_flat_candles_so_open_times_stay_contiguous(state: MarketState) -> None:
    state.apply_trade(trade("100", T0))
    state.apply_trade(trade("104", T0 + 3 * MINUTE_MS + 10_000))
    candles = state.candles(SYM, Interval.M1)
    assert [c.t for c in candles] == [T0 + i * MINUTE_MS for i in range(4)]
    for flat in candles[1:3]:
        assert flat == Candle(flat.t, D(100), D(100), D(100), D(100), D(0))
    assert candles[3].o == D(104)


def test_late_trade_leaves_closed_candles_alone(state: MarketState) -> None:
    state.apply_trade(trade("100", T0 + MINUTE_MS))
    state.apply_trade(trade("50", T0 + 1_000))  # belongs to a minute before the live candle
    assert [c.l for c in state.candles(SYM, Interval.M1)] == [D(100)]
    assert state.trades(SYM)[0].price == D(50)  # still a public trade


def test_ticker_24h_window_rolls_by_trade_time(state: MarketState) -> None:
    state.apply_trade(trade("130", T0, "1"))
    state.apply_trade(trade("100", T0 + HOUR_MS, "2"))
    state.apply_trade(trade("120", T0 + 2 * HOUR_MS, "3"))
    state.apply_trade(trade("110", T0 + DAY_MS - MINUTE_MS, "4"))
    ticker = state.ticker(SYM)
    assert ticker is not None
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == (D(130), D(130), D(100))
    assert ticker.volume_24h == D(10)
    assert ticker.change_24h_pct == D("-15.38")  # (110 - 130) / 130 * 100, two decimals

    state.apply_trade(trade("115", T0 + DAY_MS + 30_000, "5"))  # the 10:00 minute leaves the window
    ticker = state.ticker(SYM)
    assert ticker is not None
    assert (ticker.open_24h, ticker.high_24h, ticker.low_24h) == (D(100), D(120), D(100))
    assert ticker.volume_24h == D(14)
    assert ticker.change_24h_pct == D("15.00")
    assert ticker.change_24h_pct.as_tuple().exponent == -2
    assert ticker.price == D(115)
    assert ticker.ts == T0 + DAY_MS + 30_000


def test_ticker_bid_ask_come_from_depth(state: MarketState) -> None:
    state.apply_trade(trade("100.05", T0))
    ticker = state.ticker(SYM)
    assert ticker is not None and ticker.bid == ticker.ask == D("100.05")
    state.apply_depth(Depth(SYM, ((D("100.00"), D(1)),), ((D("100.10"), D(2)),), T0 + 1))
    ticker = state.ticker(SYM)
    assert ticker is not None and (ticker.bid, ticker.ask) == (D("100.00"), D("100.10"))


def test_depth_is_replaced_and_cut_to_limit(state: MarketState) -> None:
    bids = tuple((D(100 - i), D(1)) for i in range(30))
    asks = tuple((D(101 + i), D(1)) for i in range(30))
    state.apply_depth(Depth(SYM, bids, asks, T0))
    book = state.depth(SYM, limit=5)
    assert book is not None and book.bids == bids[:5] and book.asks == asks[:5]
    state.apply_depth(Depth(SYM, bids[:2], asks[:3], T0 + 1))
    book = state.depth(SYM)
    assert book is not None and (len(book.bids), len(book.asks), book.ts) == (2, 3, T0 + 1)


def test_trades_are_newest_first_and_limited(state: MarketState) -> None:
    for i in range(10):
        state.apply_trade(trade(str(100 + i), T0 + i))
    assert [t.price for t in state.trades(SYM, limit=3)] == [D(109), D(108), D(107)]
    assert state.trades(SYM, limit=0) == []


def test_memory_is_bounded_after_many_trades() -> None:
    state = MarketState([SYM], clock=FakeClock(), trades_kept=50, candles_kept=30)
    for i in range(5_000):  # one trade every 30 s: ~42 hours
        state.apply_trade(trade(str(100 + i % 7), T0 + i * 30_000))
    assert len(state.trades(SYM, limit=10_000)) == 50
    for interval in Interval:
        candles = state.candles(SYM, interval, limit=10_000)
        assert 1 <= len(candles) <= 30
        assert candles[-1].t <= T0 + 4_999 * 30_000 < candles[-1].t + interval_ms(interval)
    # A long silence fills at most `candles_kept` flat candles.
    state.apply_trade(trade("100", T0 + 400 * DAY_MS))
    assert len(state.candles(SYM, Interval.M1, limit=10_000)) == 30


def test_rolling_window_keeps_at_most_one_day_of_minutes() -> None:
    window = Rolling24h()
    for i in range(3_000):
        window.add_trade(D(100 + i), D(1), T0 + i * MINUTE_MS)
    assert len(window) == 1440 == Rolling24h.BUCKETS
    stats = window.stats()
    assert stats is not None
    assert (stats.open, stats.high, stats.low, stats.volume) == (D(100 + 1560), D(3099), D(1660), D(1440))


def test_last_update_uses_the_injected_clock() -> None:
    clock = FakeClock(5_000)
    state = MarketState([SYM], clock=clock)
    assert state.last_update_ms() is None
    state.apply_trade(trade("1", T0))
    assert state.last_update_ms() == 5_000
    clock.now = 9_000
    state.apply_depth(Depth(SYM, (), (), T0))
    assert state.last_update_ms() == 9_000


def test_staleness_is_measured_on_the_injected_clock() -> None:
    clock = FakeClock(5_000)
    state = MarketState([SYM], clock=clock)
    assert state.is_stale(10_000)  # nothing ever arrived
    state.apply_trade(trade("1", T0))
    clock.now = 15_000
    assert not state.is_stale(10_000)  # exactly 10 s: still fresh
    clock.now = 15_001
    assert state.is_stale(10_000)
    state.apply_depth(Depth(SYM, (), (), T0))
    assert not state.is_stale(10_000)


def test_subscribers_are_isolated(state: MarketState, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    trades: list[Trade] = []

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    state.subscribe(broken)
    unsubscribe = state.subscribe(seen.append)
    state.subscribe_trades(broken)
    state.subscribe_trades(trades.append)
    with caplog.at_level(logging.ERROR, logger="app.market.state"):
        state.apply_trade(trade("100", T0))
        state.apply_depth(Depth(SYM, (), (), T0))
    assert seen == [SYM, SYM]
    assert [t.price for t in trades] == [D(100)]
    assert state.ticker(SYM) is not None  # the update itself went through
    assert sum("boom" in (r.exc_text or "") for r in caplog.records) == 3

    unsubscribe()
    unsubscribe()  # idempotent
    state.apply_trade(trade("101", T0 + 1))
    assert seen == [SYM, SYM]


def test_backfill_keeps_newest_history_and_newer_live_candles() -> None:
    state = MarketState([SYM], clock=FakeClock(), candles_kept=100)
    live_open = T0 + 300 * MINUTE_MS
    state.apply_trade(trade("50", live_open + 1_000))
    history = [Candle(T0 + i * MINUTE_MS, D(10), D(12), D(9), D(11), D(1)) for i in range(300)]
    state.backfill(SYM, Interval.M1, history)
    candles = state.candles(SYM, Interval.M1, limit=1_000)
    assert len(candles) == 100
    assert candles[:-1] == history[-99:]
    assert candles[-1].t == live_open and candles[-1].c == D(50)
    ticker = state.ticker(SYM)
    assert ticker is not None
    # 1m history seeds the 24 h window: 300 minutes of volume 1 plus the live trade.
    assert ticker.open_24h == D(10) and ticker.volume_24h == D(301)


def test_restore_replaces_the_symbol_s_data_and_tells_no_trade_subscriber() -> None:
    state = MarketState([SYM, "ETHUSDT"])
    state.apply_trade(trade("50000", T0))
    state.apply_trade(trade("3000", T0, symbol="ETHUSDT"))
    heard: list[Trade] = []
    changed: list[str] = []
    state.subscribe_trades(heard.append)
    state.subscribe(changed.append)
    minutes = [Candle(T0 + i * MINUTE_MS, D(90), D(92), D(89), D(91), D(2)) for i in range(3)]
    book = Depth(SYM, ((D("90.9"), D(1)),), ((D("91.1"), D(1)),), T0 + 2 * MINUTE_MS)
    recent = [trade("90.5", T0 + 2 * MINUTE_MS), trade("91", T0 + 2 * MINUTE_MS + 5)]
    state.restore(SYM, D(91), {Interval.M1: minutes}, book, recent)
    assert state.last_price(SYM) == D(91)
    assert state.candles(SYM, Interval.M1) == minutes
    assert state.candles(SYM, Interval.H1) == []  # the old symbol data is gone, not merged
    assert state.depth(SYM) == book
    assert state.trades(SYM) == recent[::-1]
    ticker = state.ticker(SYM)
    assert ticker is not None and ticker.volume_24h == D(6) and ticker.bid == D("90.9")
    assert heard == [] and changed == [SYM]
    assert state.last_price("ETHUSDT") == D(3000)  # other symbols untouched


def test_backfill_alone_gives_a_price() -> None:
    state = MarketState([SYM], clock=FakeClock())
    state.backfill(SYM, Interval.H1, [Candle(T0, D(1), D(3), D(1), D(2), D(5))])
    ticker = state.ticker(SYM)
    assert ticker is not None and ticker.price == D(2)
    assert state.last_update_ms() is not None


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
quantities = st.decimals(min_value=D("0.001"), max_value=D("50"), places=3)
gaps = st.integers(min_value=0, max_value=3 * HOUR_MS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(prices, quantities, gaps), min_size=1, max_size=60))
def test_candle_invariants_over_random_trade_sequences(steps: list[tuple[Decimal, Decimal, int]]) -> None:
    state = MarketState([SYM], clock=FakeClock(), candles_kept=20_000)
    ts = T0
    for price, qty, gap in steps:
        ts += gap
        state.apply_trade(Trade(SYM, price, qty, "SELL", ts))
    total = sum((qty for _, qty, _ in steps), D(0))
    for interval in Interval:
        candles = state.candles(SYM, interval, limit=10_000)
        assert all(c.l <= min(c.o, c.c) and max(c.o, c.c) <= c.h for c in candles)
        size = interval_ms(interval)
        assert all(b.t - a.t == size for a, b in pairwise(candles))
        assert sum((c.v for c in candles), D(0)) == total
        assert candles[-1].c == steps[-1][0]
    ticker = state.ticker(SYM)
    assert ticker is not None
    assert ticker.low_24h <= ticker.price <= ticker.high_24h
    assert ticker.low_24h <= ticker.open_24h <= ticker.high_24h
