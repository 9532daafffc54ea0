"""Start-up history for the simulated market: candles generated per interval, backwards from the start price.

Generating each interval directly (a random walk of closes with OHLC and volume around it) costs a few
thousand candles per symbol, instead of replaying the millions of ticks that years of weekly candles need.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

from app.domain import SymbolRules
from app.market.intervals import DAY_MS, bucket_start, interval_ms
from app.market.models import Candle, Interval

# GARCH(1,1) on the history's returns so quiet and busy stretches alternate on the charts too.
_ALPHA, _BETA = 0.08, 0.90
_OMEGA = 1.0 - _ALPHA - _BETA


def to_price(value: float, rules: SymbolRules) -> Decimal:
    """A float from the random process as a positive price on the tick grid (nearest tick).

    Same result as `round_to_tick(Decimal(value), tick)` away from exact ties, but via an integer tick count:
    start-up history converts ~100k prices, and the Decimal division path is several times slower.
    """
    ticks = max(round(value / float(rules.tick_size)), 1)
    return rules.tick_size * ticks


def to_qty(value: float, rules: SymbolRules, *, at_least_min: bool = True) -> Decimal:
    """A float quantity floored onto the step grid (raised to min_qty unless `at_least_min` is False)."""
    steps = math.floor(max(value, 0.0) / float(rules.step_size))
    qty = rules.step_size * steps
    return max(qty, rules.min_qty) if at_least_min else qty


def history_candles(
    rng: random.Random,
    rules: SymbolRules,
    interval: Interval,
    *,
    count: int,
    end_ms: int,
    end_price: float,
    daily_vol: float,
    qty_per_minute: float,
) -> list[Candle]:
    """`count` contiguous candles, oldest first; the last is the live one containing `end_ms`, closing at
    `end_price`. Volume is proportional to the candle's length (the live one to its elapsed part)."""
    size = interval_ms(interval)
    last_open = bucket_start(end_ms, interval)
    sigma = daily_vol * math.sqrt(size / DAY_MS)
    minutes = size / 60_000

    # Walk backwards from the end: closes[i] is the close of candle i, opens follow the previous close.
    log_closes = [0.0] * count
    shocks = [0.0] * count
    log_price, variance, previous_z = math.log(end_price), 1.0, 0.0
    for i in range(count - 1, -1, -1):
        log_closes[i] = log_price
        variance = min(_OMEGA + _ALPHA * previous_z * previous_z + _BETA * variance, 25.0)
        previous_z = rng.gauss(0.0, 1.0) * math.sqrt(variance)
        shocks[i] = previous_z
        log_price -= sigma * previous_z
    first_open = log_price

    # Hot loop (~4k candles per symbol): locals and integer tick counts instead of per-value helper calls.
    tick, tick_f = rules.tick_size, float(rules.tick_size)
    step, step_f = rules.step_size, float(rules.step_size)
    gauss, exp = rng.gauss, math.exp

    def price(log_value: float) -> Decimal:
        return tick * max(round(exp(log_value) / tick_f), 1)

    candles: list[Candle] = []
    open_price = price(first_open)
    log_open = first_open
    for i in range(count):
        log_close = log_closes[i]
        close_price = price(log_close)
        # Wicks beyond the body, larger in volatile candles.
        wick = sigma * (0.3 + 0.3 * abs(shocks[i]))
        high = price(max(log_open, log_close) + abs(gauss(0.0, wick)))
        low = price(min(log_open, log_close) - abs(gauss(0.0, wick)))
        t = last_open - (count - 1 - i) * size
        elapsed = 1.0 if i < count - 1 else max(end_ms - t, 0) / size
        volume = qty_per_minute * minutes * elapsed * exp(gauss(0.0, 0.35)) * (1.0 + 0.5 * abs(shocks[i]))
        # Rounding is monotone, so low <= open, close <= high survives it.
        candles.append(Candle(t, open_price, high, low, close_price, step * math.floor(volume / step_f)))
        open_price, log_open = close_price, log_close
    return candles
