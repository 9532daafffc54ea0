"""The simulated market (MARKET_DATA=simulated, the offline default): seeded, deterministic, realistic enough.

Per symbol: a log-price random walk whose variance follows GARCH(1,1) (volatility clusters), rare jumps, a
spread of a few ticks, a >= 20-level depth ladder whose sizes drift, and public trades of random size on both
sides at the touch. Floats live only inside the random process; every price and quantity handed to MarketState
is a Decimal on the symbol's tick/step grid.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Mapping
from decimal import Decimal

from app.domain import SymbolRules
from app.ids import now_ms
from app.market.models import Depth, Interval, PriceLevel, Trade
from app.market.sim_history import history_candles, to_price, to_qty
from app.market.state import MarketState
from app.market.symbols import SimProfile, sim_profile, simulated_rules

logger = logging.getLogger(__name__)

LEVELS = 25  # depth ladder levels per side
HISTORY_CANDLES = 600  # per interval (other than 1m) at start-up: charts ask for 500
HISTORY_MINUTES = 1440  # 1m history covers a whole day so the 24 h statistics are meaningful at once
# Volatility clustering: GARCH(1,1) in its continuous-time limit, so it behaves the same at any tick rate.
# Per tick of dt seconds: persistence alpha + beta = exp(-dt / TAU) (a shock's effect halves in ~10 min) and
# alpha ~ sqrt(dt) (so the variance's own noise per unit of time does not depend on dt).
_VOL_TAU_S = 900.0
_ALPHA_PER_SQRT_S = 0.035  # calibrated: |1m return| lag-1 autocorrelation ~0.2
_MAX_VARIANCE = 25.0  # at most 5x the normal volatility
# Jumps (news prints): a Poisson process, about one every 15 min, carrying 20 % of the daily variance.
_JUMP_RATE_PER_S = 1.0 / 900.0
_JUMP_VARIANCE_SHARE = 0.2
_MAX_STEP_S = 60.0  # a stalled loop or a clock jump must not produce an absurd move
_TRADE_COUNT_WEIGHTS = (0.15, 0.45, 0.25, 0.15)  # 0..3 trades per tick: "usually one or more"
_MEAN_TRADES_PER_TICK = 1.4
_MEAN_LOGNORMAL_1 = math.exp(0.5)  # mean of lognormvariate(0, 1): the average trade is this x the median


class _SymbolSim:
    """One symbol's random process and the data it emits."""

    def __init__(self, rules: SymbolRules, profile: SimProfile, rng: random.Random) -> None:
        self.rules = rules
        self.profile = profile
        self.rng = rng
        self.log_price = math.log(profile.price)
        self.variance = 1.0  # GARCH multiplier of the base per-second variance; long-run mean 1
        self.last_shock = 0.0
        self.bid_sizes = [1.0] * LEVELS  # per-level size multipliers, mean-reverting in log space
        self.ask_sizes = [1.0] * LEVELS
        # The diffusion carries the daily variance that the jumps do not.
        self.sigma_per_s = profile.daily_vol * math.sqrt((1.0 - _JUMP_VARIANCE_SHARE) / 86_400.0)
        self.jump_sigma = profile.daily_vol * math.sqrt(_JUMP_VARIANCE_SHARE / (_JUMP_RATE_PER_S * 86_400.0))
        # Ladder spacing ~0.2 bp of price (at least one tick), so 25 levels span a few basis points.
        self.gap_ticks = max(1, round(profile.price * 0.00002 / float(rules.tick_size)))

    def move(self, dt_s: float) -> float:
        """Advance the price by `dt_s` seconds; returns the tick's shock in diffusion sigmas (sign = direction)."""
        rng = self.rng
        persistence = math.exp(-dt_s / _VOL_TAU_S)
        alpha = min(_ALPHA_PER_SQRT_S * math.sqrt(dt_s), persistence / 2)
        beta = persistence - alpha
        # omega = 1 - alpha - beta keeps the long-run mean of the variance multiplier at 1.
        self.variance = min((1.0 - persistence) + alpha * self.last_shock**2 + beta * self.variance, _MAX_VARIANCE)
        diffusion = self.sigma_per_s * math.sqrt(dt_s)
        shock = rng.gauss(0.0, 1.0) * math.sqrt(self.variance)
        if diffusion > 0 and rng.random() < _JUMP_RATE_PER_S * dt_s:
            shock += rng.gauss(0.0, self.jump_sigma) / diffusion
        self.log_price += diffusion * shock
        # A jump feeds the variance too (volatility rises after news), capped: about +0.45 per jump at 8/s.
        self.last_shock = max(min(shock, 6.0), -6.0)
        return shock

    def book(self, ts: int) -> Depth:
        """A fresh ladder around the current price: spread of a few ticks, sizes drifting over time."""
        rng, rules = self.rng, self.rules
        tick = rules.tick_size
        mid = to_price(math.exp(self.log_price), rules)
        spread = 1 + min(int(rng.expovariate(1.5) * math.sqrt(self.variance)), 4)  # ticks
        best_bid = max(mid - (spread // 2) * tick, tick * LEVELS * self.gap_ticks * 2)
        best_ask = best_bid + spread * tick
        unit_qty = self.profile.level_notional / math.exp(self.log_price)
        for sizes in (self.bid_sizes, self.ask_sizes):
            for i, size in enumerate(sizes):
                sizes[i] = math.exp(0.9 * math.log(size) + rng.gauss(0.0, 0.25))
        bids = self._side(best_bid, -tick, self.bid_sizes, unit_qty)
        asks = self._side(best_ask, tick, self.ask_sizes, unit_qty)
        return Depth(rules.symbol, bids, asks, ts)

    def _side(self, best: Decimal, direction: Decimal, sizes: list[float], unit: float) -> tuple[PriceLevel, ...]:
        levels: list[PriceLevel] = []
        price = best
        for i, size in enumerate(sizes):
            levels.append((price, to_qty(unit * (1.0 + 0.12 * i) * size, self.rules)))
            price += direction * (self.gap_ticks * (1 + (self.rng.random() < 0.33)))  # uneven spacing
        return tuple(levels)

    def trades(self, depth: Depth, shock: float, ts: int) -> list[Trade]:
        """Public trades at the touch; buys dominate after an up-move and sells after a down-move."""
        rng = self.rng
        count = rng.choices(range(len(_TRADE_COUNT_WEIGHTS)), _TRADE_COUNT_WEIGHTS)[0]
        count += int(rng.random() < min(0.5, (self.variance - 1.0) * 0.2))  # busier when volatile
        buy_probability = 0.5 + max(min(shock * 0.15, 0.35), -0.35)
        median_qty = self.profile.trade_notional / math.exp(self.log_price)
        out: list[Trade] = []
        for _ in range(count):
            buy = rng.random() < buy_probability
            price = depth.asks[0][0] if buy else depth.bids[0][0]
            qty = to_qty(median_qty * rng.lognormvariate(0.0, 1.0), self.rules)
            out.append(Trade(self.rules.symbol, price, qty, "BUY" if buy else "SELL", ts))
        return out


class SimulatedMarket:
    """Drives MarketState with simulated data: history at start-up, then `ticks_per_second` steps.

    Deterministic: the same seed and the same sequence of clock() values give identical trades, depth and
    candles. Each symbol has its own `random.Random` derived from seed and symbol (adding a symbol does not
    change the others); start-up candle history comes from a separate stream per symbol.
    """

    def __init__(
        self,
        state: MarketState,
        rules: Mapping[str, SymbolRules],
        *,
        seed: int = 42,
        clock: Callable[[], int] = now_ms,
        ticks_per_second: float = 8.0,
    ) -> None:
        if ticks_per_second <= 0:
            raise ValueError("ticks_per_second must be positive")
        self._state = state
        self._seed = seed
        self._clock = clock
        self._tick_s = 1.0 / ticks_per_second
        self._last_ms: int | None = None
        missing = [s for s in state.symbols if s not in rules]
        all_rules = {**simulated_rules(missing), **rules}
        self._sims = {
            symbol: _SymbolSim(all_rules[symbol], sim_profile(symbol), random.Random(f"{seed}:{symbol}"))
            for symbol in state.symbols
        }

    def backfill(self) -> None:
        """Start-up: candle history of every interval ending at clock(), a depth snapshot, a few trades."""
        now = self._clock()
        for symbol, sim in self._sims.items():
            rng = random.Random(f"{self._seed}:{symbol}:history")
            profile = sim.profile
            # Same mean volume per minute as the live process produces.
            trades_per_minute = 60.0 / self._tick_s * _MEAN_TRADES_PER_TICK
            qty_per_minute = profile.trade_notional * _MEAN_LOGNORMAL_1 * trades_per_minute / profile.price
            for interval in Interval:
                candles = history_candles(
                    rng,
                    sim.rules,
                    interval,
                    count=HISTORY_MINUTES if interval is Interval.M1 else HISTORY_CANDLES,
                    end_ms=now,
                    end_price=math.exp(sim.log_price),
                    daily_vol=profile.daily_vol,
                    qty_per_minute=qty_per_minute,
                )
                self._state.backfill(symbol, interval, candles)
            depth = sim.book(now)
            self._state.apply_depth(depth)
            for _ in range(3):  # a few recent trades, so the trades panel and last price are there at once
                for trade in sim.trades(depth, 0.0, now):
                    self._state.apply_trade(trade)
        self._last_ms = now

    def resume(self) -> None:
        """Continue from MarketState's last prices instead of where this process's own walk was (a replica that
        becomes the cluster's feed leader: its state holds the previous leader's prices); the next step moves by
        the time from now, not since this simulator last ran."""
        for symbol, sim in self._sims.items():
            price = self._state.last_price(symbol)
            if price is not None and price > 0:
                sim.log_price = math.log(float(price))
        self._last_ms = self._clock()

    def step(self) -> None:
        """One tick at clock(): every symbol moves, gets a fresh depth ladder and usually 1+ trades."""
        now = self._clock()
        dt_s = self._tick_s if self._last_ms is None else (now - self._last_ms) / 1000.0
        dt_s = min(max(dt_s, 0.0), _MAX_STEP_S)
        self._last_ms = now
        for sim in self._sims.values():
            shock = sim.move(dt_s)
            depth = sim.book(now)
            self._state.apply_depth(depth)
            for trade in sim.trades(depth, shock, now):
                self._state.apply_trade(trade)

    async def run(self) -> None:
        """step() every 1/ticks_per_second on a fixed cadence (the step's own cost does not lower the rate), until
        cancelled. A failing step is logged, not fatal. After a stall the cadence restarts: no burst of catch-up
        steps (step() moves the price by the time that really passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            try:
                self.step()
            except Exception:
                logger.exception("simulated market step failed")
            deadline += self._tick_s
            delay = deadline - loop.time()
            if delay < 0:
                deadline, delay = loop.time(), 0.0
            await asyncio.sleep(delay)
