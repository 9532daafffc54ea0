"""The simulated market: Binance-like rules, realistic start, deterministic by seed, a sane book and trades."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

import pytest

from app.domain import on_grid
from app.market.intervals import DAY_MS, HOUR_MS, MINUTE_MS, bucket_start, interval_ms
from app.market.models import Candle, Depth, Interval, Trade
from app.market.simulated import SimulatedMarket
from app.market.state import MarketState
from app.market.symbols import SIM_PROFILES, sim_profile, simulated_rules, split_symbol

D = Decimal
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
START = int(datetime(2026, 11, 25, 13, 47, 31, tzinfo=UTC).timestamp() * 1000) + 250


class StepClock:
    """Advances by `step_ms` on every read: a deterministic stand-in for the wall clock."""

    def __init__(self, start: int = START, step_ms: int = 125) -> None:
        self.now = start - step_ms
        self.step_ms = step_ms

    def __call__(self) -> int:
        self.now += self.step_ms
        return self.now


def make(seed: int = 42, symbols: list[str] | None = None) -> tuple[MarketState, SimulatedMarket]:
    symbols = symbols or SYMBOLS
    state = MarketState(symbols, clock=lambda: 0)
    market = SimulatedMarket(state, simulated_rules(symbols), seed=seed, clock=StepClock())
    return state, market


def fingerprint(seed: int, steps: int = 100) -> str:
    """Hash of every trade and depth snapshot emitted, plus the final candles of every interval."""
    state, market = make(seed)
    digest = hashlib.sha256()
    state.subscribe_trades(lambda t: digest.update(repr(t).encode()))
    market.backfill()
    for _ in range(steps):
        market.step()
        for symbol in SYMBOLS:
            digest.update(repr(state.depth(symbol, limit=100)).encode())
    for symbol in SYMBOLS:
        for interval in Interval:
            digest.update(repr(state.candles(symbol, interval, limit=1_000)).encode())
    return digest.hexdigest()


# ---- rules and profiles -------------------------------------------------------------------------------------


def test_known_symbol_rules_are_binance_like() -> None:
    rules = simulated_rules(SYMBOLS)
    expected = {
        "BTCUSDT": ("0.01", "0.00001"),
        "ETHUSDT": ("0.01", "0.0001"),
        "BNBUSDT": ("0.01", "0.001"),
        "SOLUSDT": ("0.01", "0.001"),
        "XRPUSDT": ("0.0001", "0.1"),
    }
    for symbol, (tick, step) in expected.items():
        r = rules[symbol]
        assert (r.tick_size, r.step_size, r.min_qty, r.min_notional) == (D(tick), D(step), D(step), D(5))
        assert (r.base, r.quote) == (symbol[:-4], "USDT")


def test_unknown_symbols_get_generic_rules_split_by_quote_suffix() -> None:
    rules = simulated_rules(["DOGEUSDT", "ETHBTC", "BTCFDUSD", "SUIUSDC"])
    assert [(r.base, r.quote) for r in rules.values()] == [
        ("DOGE", "USDT"),
        ("ETH", "BTC"),
        ("BTC", "FDUSD"),
        ("SUI", "USDC"),
    ]
    assert all((r.tick_size, r.step_size) == (D("0.01"), D("0.001")) for r in rules.values())
    assert rules["SUIUSDC"].min_notional == D(5)
    assert split_symbol("WEIRD") == ("WEIRD", "USDT")


def test_profiles_start_at_realistic_prices() -> None:
    assert SIM_PROFILES["BTCUSDT"].price == 90_000
    assert SIM_PROFILES["XRPUSDT"].price == 2.2
    assert sim_profile("DOGEUSDT").price == 100


# ---- determinism --------------------------------------------------------------------------------------------


def test_same_seed_and_clock_give_identical_output_and_seeds_differ() -> None:
    first = fingerprint(seed=7)
    assert fingerprint(seed=7) == first
    assert fingerprint(seed=8) != first


def test_symbols_have_independent_streams() -> None:
    """Adding a symbol must not change another symbol's data (per-symbol generators)."""
    alone, market_alone = make(symbols=["ETHUSDT"])
    both, market_both = make(symbols=["ETHUSDT", "BTCUSDT"])
    for market in (market_alone, market_both):
        market.backfill()
        for _ in range(20):
            market.step()
    assert alone.trades("ETHUSDT", 200) == both.trades("ETHUSDT", 200)
    assert alone.candles("ETHUSDT", Interval.H1) == both.candles("ETHUSDT", Interval.H1)


# ---- start-up history ---------------------------------------------------------------------------------------


def test_backfill_gives_contiguous_history_of_every_interval_ending_now() -> None:
    state, market = make()
    market.backfill()
    for symbol in SYMBOLS:
        rules = simulated_rules([symbol])[symbol]
        for interval in Interval:
            candles = state.candles(symbol, interval, limit=1_000)
            assert len(candles) >= 500
            size = interval_ms(interval)
            assert all(b.t - a.t == size for a, b in pairwise(candles))
            assert candles[-1].t == bucket_start(START, interval)  # the live candle holds "now"
            for c in candles:
                assert D(0) < c.l <= min(c.o, c.c) <= max(c.o, c.c) <= c.h
                assert all(on_grid(p, rules.tick_size) for p in (c.o, c.h, c.l, c.c))
                assert c.v >= 0 and on_grid(c.v, rules.step_size)
            # Each candle opens where the previous one closed: one continuous price path.
            assert all(b.o == a.c for a, b in pairwise(candles))
        ticker = state.ticker(symbol)
        assert ticker is not None and state.depth(symbol) is not None and state.trades(symbol)
        assert abs(ticker.price / D(repr(sim_profile(symbol).price)) - 1) < D("0.01")
        assert ticker.volume_24h > 0 and ticker.low_24h < ticker.high_24h


def test_unconfigured_rules_fall_back_to_generic_at_price_100() -> None:
    state = MarketState(["DOGEUSDT"], clock=lambda: 0)
    market = SimulatedMarket(state, {}, clock=StepClock())
    market.backfill()
    ticker = state.ticker("DOGEUSDT")
    assert ticker is not None and D(99) < ticker.price < D(101)


# ---- the live process ---------------------------------------------------------------------------------------


def assert_sane_book(depth: Depth, symbol: str) -> None:
    rules = simulated_rules([symbol])[symbol]
    assert len(depth.bids) >= 20 and len(depth.asks) >= 20
    bid_prices = [p for p, _ in depth.bids]
    ask_prices = [p for p, _ in depth.asks]
    assert bid_prices == sorted(bid_prices, reverse=True) and len(set(bid_prices)) == len(bid_prices)
    assert ask_prices == sorted(ask_prices) and len(set(ask_prices)) == len(ask_prices)
    assert D(0) < bid_prices[0] < ask_prices[0] <= bid_prices[0] + 5 * rules.tick_size  # a few ticks
    for price, qty in depth.bids + depth.asks:
        assert on_grid(price, rules.tick_size) and on_grid(qty, rules.step_size)
        assert qty >= rules.min_qty


def test_steps_produce_a_sane_changing_book_and_trades_on_both_sides() -> None:
    state, market = make()
    market.backfill()
    trades: list[Trade] = []
    state.subscribe_trades(trades.append)
    books: dict[str, list[Depth]] = {s: [] for s in SYMBOLS}
    for _ in range(300):
        market.step()
        for symbol in SYMBOLS:
            depth = state.depth(symbol, limit=100)
            assert depth is not None
            assert_sane_book(depth, symbol)
            books[symbol].append(depth)
    for symbol in SYMBOLS:
        rules = simulated_rules([symbol])[symbol]
        mine = [t for t in trades if t.symbol == symbol]
        assert len(mine) >= 300  # "usually one or more" per tick
        assert {t.side for t in mine} == {"BUY", "SELL"}
        assert len({t.qty for t in mine}) > 50  # random sizes
        assert all(on_grid(t.price, rules.tick_size) and on_grid(t.qty, rules.step_size) for t in mine)
        assert all(t.qty >= rules.min_qty for t in mine)
        # Level sizes drift from tick to tick, and the price actually moves.
        assert books[symbol][0].bids[5][1] != books[symbol][1].bids[5][1]
        assert len({b.bids[0][0] for b in books[symbol]}) > 10


def test_trades_hit_the_touch_of_the_book_they_come_with() -> None:
    state, market = make(symbols=["BTCUSDT"])
    market.backfill()
    checked: list[bool] = []

    def check(trade: Trade) -> None:
        # The step applies its depth before its trades. No assert here: subscriber errors are only logged.
        book = state.depth(trade.symbol, limit=1)
        touch = None if book is None else book.asks[0][0] if trade.side == "BUY" else book.bids[0][0]
        checked.append(book is not None and book.ts == trade.ts and trade.price == touch)

    state.subscribe_trades(check)
    for _ in range(50):
        market.step()
    assert len(checked) >= 50 and all(checked)


def test_a_clock_jump_does_not_explode_the_price() -> None:
    clock_values = iter([START, START + 125, START + 30 * 86_400_000])
    state = MarketState(["BTCUSDT"], clock=lambda: 0)
    market = SimulatedMarket(state, simulated_rules(["BTCUSDT"]), clock=lambda: next(clock_values))
    market.backfill()
    market.step()
    market.step()  # a month-long stall is capped at one minute of movement
    ticker = state.ticker("BTCUSDT")
    assert ticker is not None and D(80_000) < ticker.price < D(100_000)


def test_resume_continues_from_the_state_s_last_price_not_the_seed() -> None:
    state = MarketState(["BTCUSDT"], clock=lambda: 0)
    market = SimulatedMarket(state, simulated_rules(["BTCUSDT"]), clock=StepClock())
    market.backfill()
    # Another replica led the feed meanwhile and left the price at twice the seed's.
    state.apply_trade(Trade("BTCUSDT", D(180_000), D("0.01"), "BUY", START))
    market.resume()
    for _ in range(5):
        market.step()
    price = state.last_price("BTCUSDT")
    assert price is not None and D(170_000) < price < D(190_000)


async def test_run_steps_until_cancelled_and_survives_a_failing_step(caplog: pytest.LogCaptureFixture) -> None:
    state, market = make(symbols=["SOLUSDT"])
    market_step = market.step
    calls = 0
    stepped_twice = asyncio.Event()

    def flaky_step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("glitch")
        market_step()
        stepped_twice.set()

    market.step = flaky_step  # type: ignore[method-assign]
    task = asyncio.create_task(market.run())
    await asyncio.wait_for(stepped_twice.wait(), timeout=10)  # a safety net, not a timing assertion
    assert state.depth("SOLUSDT") is not None
    assert any("glitch" in (r.exc_text or "") for r in caplog.records)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---- candle roll-over on the injected clock -------------------------------------------------------------------


def test_live_candles_roll_over_at_minute_and_hour_boundaries_on_the_injected_clock() -> None:
    """The simulator stamps trades with its clock: stepping it across 10:59:00 and 11:00:00 UTC rolls the 1m,
    5m and 1h candles exactly there, while the day's candle stays live and closed candles stay as they were."""
    hour = int(datetime(2026, 11, 25, 11, 0, tzinfo=UTC).timestamp() * 1000)
    clock = StepClock(start=hour - MINUTE_MS - 1_000, step_ms=250)  # 10:58:59.000, then every 250 ms
    state = MarketState(["BTCUSDT"], clock=lambda: 0)
    market = SimulatedMarket(state, simulated_rules(["BTCUSDT"]), clock=clock)
    market.backfill()
    assert state.candles("BTCUSDT", Interval.M1, 1)[0].t == hour - 2 * MINUTE_MS  # live: 10:58

    live_at_trade: list[tuple[int, dict[Interval, int]]] = []
    state.subscribe_trades(
        lambda t: live_at_trade.append((t.ts, {i: state.candles(t.symbol, i, 1)[0].t for i in Interval}))
    )
    closed: dict[Interval, Candle] = {}
    while clock.now < hour + MINUTE_MS - clock.step_ms:  # through 11:00:59.750
        if clock.now + clock.step_ms == hour:  # the next step is 11:00:00.000: remember the candles it closes
            closed = {i: state.candles("BTCUSDT", i, 1)[0] for i in (Interval.M1, Interval.M5, Interval.H1)}
        market.step()

    # Every trade went into the candle of its own timestamp, so the live candle rolled exactly on the boundary.
    assert len(live_at_trade) > 300
    for ts, live in live_at_trade:
        assert live == {i: bucket_start(ts, i) for i in Interval}, ts
    assert any(ts == hour for ts, _ in live_at_trade) or any(hour < ts < hour + 1_000 for ts, _ in live_at_trade)

    minutes = state.candles("BTCUSDT", Interval.M1, 3)
    assert [c.t for c in minutes] == [hour - 2 * MINUTE_MS, hour - MINUTE_MS, hour]
    assert [c.t for c in state.candles("BTCUSDT", Interval.M5, 2)] == [hour - 5 * MINUTE_MS, hour]
    assert [c.t for c in state.candles("BTCUSDT", Interval.H1, 2)] == [hour - HOUR_MS, hour]
    day = state.candles("BTCUSDT", Interval.D1, 2)
    assert day[-1].t == bucket_start(hour, Interval.D1) and day[-2].t == day[-1].t - DAY_MS
    for interval, candle in closed.items():  # closed at 11:00:00.000 and final from then on
        assert state.candles("BTCUSDT", interval, 2)[0] == candle


# ---- bounded memory ---------------------------------------------------------------------------------------------


def test_market_state_memory_does_not_grow_with_uptime() -> None:
    """Days of simulated trading (one step a minute) after every container has filled: the traced memory of the
    process stays flat (about 10 KB of noise), whereas keeping those trades would add several hundred KB."""
    tracemalloc.start()
    try:
        clock = StepClock(step_ms=MINUTE_MS)
        state = MarketState(["BTCUSDT"], clock=lambda: 0, trades_kept=100, candles_kept=100)
        market = SimulatedMarket(state, simulated_rules(["BTCUSDT"]), clock=clock)
        market.backfill()
        seen: list[int] = [0]
        state.subscribe_trades(lambda _: seen.__setitem__(0, seen[0] + 1))

        def run(steps: int) -> int:
            for _ in range(steps):
                market.step()
            gc.collect()
            return tracemalloc.get_traced_memory()[0]

        warm = run(1_500)  # 25 hours: the 24 h window has replaced all of its start-up minutes
        trades_before = seen[0]
        after = run(2_000)  # 33 more hours
    finally:
        tracemalloc.stop()
    assert seen[0] - trades_before > 2_000  # thousands of trades went through...
    assert after - warm < 128 * 1024, after - warm  # ...and memory did not follow them
    assert len(state.trades("BTCUSDT", 10_000)) == 100
    for interval in Interval:
        assert len(state.candles("BTCUSDT", interval, 10_000)) == 100
