"""Simulated symbol rules (Binance-like filters) and the profile each simulated symbol starts from."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from app.domain import SymbolRules

logger = logging.getLogger(__name__)

# Longest first, so a suffix that ends another one can never shadow it.
QUOTE_SUFFIXES: tuple[str, ...] = tuple(
    sorted(("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB"), key=len, reverse=True)
)

# (tick_size, step_size) as on Binance Spot; min_qty equals the step there.
_KNOWN_FILTERS: dict[str, tuple[str, str]] = {
    "BTCUSDT": ("0.01", "0.00001"),
    "ETHUSDT": ("0.01", "0.0001"),
    "BNBUSDT": ("0.01", "0.001"),
    "SOLUSDT": ("0.01", "0.001"),
    "XRPUSDT": ("0.0001", "0.1"),
}
_GENERIC_FILTERS = ("0.01", "0.001")

# NOTIONAL filter by quote asset: 5 for the dollar stablecoins, a comparable small amount for crypto quotes.
_MIN_NOTIONAL: dict[str, Decimal] = {
    "BTC": Decimal("0.0001"),
    "ETH": Decimal("0.001"),
    "BNB": Decimal("0.01"),
}
_STABLE_MIN_NOTIONAL = Decimal("5")


@dataclass(frozen=True, slots=True)
class SimProfile:
    """Where a simulated symbol starts and how it moves. Floats: they only feed the random process."""

    price: float  # starting price, quote asset
    daily_vol: float  # standard deviation of the daily log return
    trade_notional: float  # median public trade size, quote asset
    level_notional: float  # median resting size of a near-touch book level, quote asset


SIM_PROFILES: dict[str, SimProfile] = {
    "BTCUSDT": SimProfile(price=90_000.0, daily_vol=0.030, trade_notional=1_500.0, level_notional=40_000.0),
    "ETHUSDT": SimProfile(price=3_000.0, daily_vol=0.040, trade_notional=1_000.0, level_notional=25_000.0),
    "BNBUSDT": SimProfile(price=600.0, daily_vol=0.030, trade_notional=500.0, level_notional=10_000.0),
    "SOLUSDT": SimProfile(price=150.0, daily_vol=0.050, trade_notional=600.0, level_notional=12_000.0),
    "XRPUSDT": SimProfile(price=2.2, daily_vol=0.050, trade_notional=400.0, level_notional=8_000.0),
}
GENERIC_PROFILE = SimProfile(price=100.0, daily_vol=0.040, trade_notional=300.0, level_notional=5_000.0)


def sim_profile(symbol: str) -> SimProfile:
    """The simulator's profile of `symbol`; unknown symbols start at 100 with a generic volatility."""
    return SIM_PROFILES.get(symbol, GENERIC_PROFILE)


def split_symbol(symbol: str) -> tuple[str, str]:
    """`ETHBTC` -> (`ETH`, `BTC`) by the known quote suffixes; without one, assume a USDT quote (logged)."""
    for quote in QUOTE_SUFFIXES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    logger.warning("symbol %s has no known quote suffix; assuming USDT", symbol)
    return symbol, "USDT"


def simulated_rules(symbols: Sequence[str]) -> dict[str, SymbolRules]:
    """Binance-like filters for the simulated market and the paper venue, one entry per symbol."""
    rules: dict[str, SymbolRules] = {}
    for symbol in symbols:
        base, quote = split_symbol(symbol)
        tick, step = _KNOWN_FILTERS.get(symbol, _GENERIC_FILTERS)
        rules[symbol] = SymbolRules(
            symbol=symbol,
            base=base,
            quote=quote,
            tick_size=Decimal(tick),
            step_size=Decimal(step),
            min_qty=Decimal(step),
            min_notional=_MIN_NOTIONAL.get(quote, _STABLE_MIN_NOTIONAL),
        )
    return rules
