"""Start-up history for the simulated market: candles generated per interval, backwards from the start price.

Generating each interval directly (a random walk of closes with OHLC and volume around it) costs a few
thousand candles per symbol, instead of replaying the millions of ticks that years of weekly candles need.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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


# Generated shapes by the generator's state and parameters, when a process builds many markets: the test suite
# builds one per test, each drawing the same history from the same seed (~0.1 s a build). A server builds one and
# keeps none: the shapes of one market hold ~11 MB. Bounded: one market's worth of entries is 25 (5 symbols x 5
# intervals).
_SHAPES: dict[tuple[object, ...], tuple[_Shape, tuple[Any, ...]]] = {}
_SHAPES_KEPT = 0


def keep_shapes(entries: int) -> None:
    """Keep up to `entries` generated shapes for later builds in this process (0: keep none, the default)."""
    global _SHAPES_KEPT
    _SHAPES_KEPT = entries
    _SHAPES.clear()


@dataclass(frozen=True, slots=True)
class _Shape:
    """A history's candles without their times: prices and volumes of the finished candles, and what the live
    (last) candle's volume is made of, which depends on how much of it has elapsed."""

    bodies: list[tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]  # o, h, l, c, v (the last one's v unused)
    last_draw: tuple[float, float]  # the live candle's exp(gauss) and (1 + 0.5 |shock|)


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
    `end_price`. Volume is proportional to the candle's length (the live one to its elapsed part). Leaves `rng`
    where generating them leaves it."""
    if count <= 0:
        return []
    size = interval_ms(interval)
    if _SHAPES_KEPT:
        key = (rng.getstate(), rules, interval, count, end_price, daily_vol, qty_per_minute)
        cached = _SHAPES.get(key)
        if cached is None:
            shape = _history_shape(rng, rules, size, count, end_price, daily_vol, qty_per_minute)
            if len(_SHAPES) >= _SHAPES_KEPT:
                _SHAPES.clear()
            _SHAPES[key] = (shape, rng.getstate())
        else:
            shape = cached[0]
            rng.setstate(cached[1])
    else:
        shape = _history_shape(rng, rules, size, count, end_price, daily_vol, qty_per_minute)
    last_open = bucket_start(end_ms, interval)
    first_open = last_open - (count - 1) * size
    candles = [Candle(first_open + i * size, *body) for i, body in enumerate(shape.bodies[:-1])]
    o, h, low, c, _ = shape.bodies[-1]
    elapsed = max(end_ms - last_open, 0) / size
    spread, shock = shape.last_draw
    volume = qty_per_minute * (size / 60_000) * elapsed * spread * shock  # as a finished one's, times elapsed
    candles.append(Candle(last_open, o, h, low, c, rules.step_size * math.floor(volume / float(rules.step_size))))
    return candles


def _history_shape(
    rng: random.Random,
    rules: SymbolRules,
    size: int,
    count: int,
    end_price: float,
    daily_vol: float,
    qty_per_minute: float,
) -> _Shape:
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

    bodies: list[tuple[Decimal, Decimal, Decimal, Decimal, Decimal]] = []
    open_price = price(first_open)
    log_open = first_open
    draw = (1.0, 1.0)
    for i in range(count):
        log_close = log_closes[i]
        close_price = price(log_close)
        # Wicks beyond the body, larger in volatile candles.
        wick = sigma * (0.3 + 0.3 * abs(shocks[i]))
        high = price(max(log_open, log_close) + abs(gauss(0.0, wick)))
        low = price(min(log_open, log_close) - abs(gauss(0.0, wick)))
        draw = (exp(gauss(0.0, 0.35)), 1.0 + 0.5 * abs(shocks[i]))
        volume = qty_per_minute * minutes * draw[0] * draw[1]  # a finished candle: elapsed 1.0
        # Rounding is monotone, so low <= open, close <= high survives it.
        bodies.append((open_price, high, low, close_price, step * math.floor(volume / step_f)))
        open_price, log_open = close_price, log_close
    return _Shape(bodies, draw)
