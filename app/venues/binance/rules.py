"""exchangeInfo -> symbol filters and SymbolRules: the one parser, for the venue adapter and the live market feed.

Binance's filter strings are exact, so they are preferred; ccxt's parsed `precision` / `limits` floats (TICK_SIZE
precision mode: tick sizes, not digit counts) are only a fallback for a filter the venue omits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain import SymbolRules, fmt
from app.venues.binance.mapping import to_decimal

DEFAULT_MAX_QTY = SymbolRules("", "", "", Decimal(0), Decimal(0), Decimal(0), Decimal(0)).max_qty


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """The exchangeInfo filters the adapter checks before sending (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
    NOTIONAL / MIN_NOTIONAL), exactly as Binance states them (0 where a filter is absent)."""

    symbol: str
    base: str
    quote: str
    status: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    # TRAILING_DELTA: the trailingDelta range (BIPS) of a STOP_LOSS SELL / TAKE_PROFIT BUY ("below"); 0 if absent.
    min_trailing_below: int = 0
    max_trailing_below: int = 0

    @classmethod
    def from_exchange_info(cls, info: Mapping[str, Any], fallback: Mapping[str, object] | None = None) -> SymbolFilters:
        """Build from one raw `symbols[]` entry of GET /api/v3/exchangeInfo (ccxt keeps it as `market['info']`).
        `fallback` supplies tick_size / step_size / min_qty / max_qty / min_notional for absent filters."""
        by_type = {f.get("filterType"): f for f in info.get("filters", []) if isinstance(f, Mapping)}
        price = by_type.get("PRICE_FILTER", {})
        lot = by_type.get("LOT_SIZE", {})
        market_lot = by_type.get("MARKET_LOT_SIZE", {})
        notional = by_type.get("NOTIONAL") or by_type.get("MIN_NOTIONAL") or {}
        trailing = by_type.get("TRAILING_DELTA", {})
        spare = fallback or {}
        return cls(
            symbol=str(info["symbol"]),
            base=str(info.get("baseAsset", "")),
            quote=str(info.get("quoteAsset", "")),
            status=str(info.get("status", "")),
            tick_size=_first(price.get("tickSize"), spare.get("tick_size")),
            min_price=_first(price.get("minPrice")),
            max_price=_first(price.get("maxPrice")),
            step_size=_first(lot.get("stepSize"), spare.get("step_size")),
            min_qty=_first(lot.get("minQty"), spare.get("min_qty")),
            max_qty=_first(lot.get("maxQty"), spare.get("max_qty")),
            market_max_qty=_first(market_lot.get("maxQty")),
            min_notional=_first(notional.get("minNotional"), spare.get("min_notional")),
            max_notional=_first(notional.get("maxNotional")),
            min_trailing_below=int(trailing.get("minTrailingBelowDelta") or 0),
            max_trailing_below=int(trailing.get("maxTrailingBelowDelta") or 0),
        )

    @classmethod
    def from_market(cls, market: Mapping[str, Any]) -> SymbolFilters:
        """Build from a ccxt market: its raw `info`, with ccxt's precision/limits for any filter Binance left out."""
        info = dict(market["info"])
        info.setdefault("symbol", market["id"])
        info.setdefault("baseAsset", market.get("baseId", ""))
        info.setdefault("quoteAsset", market.get("quoteId", ""))
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        amount, cost = limits.get("amount") or {}, limits.get("cost") or {}
        fallback = {
            "tick_size": precision.get("price"),
            "step_size": precision.get("amount"),
            "min_qty": amount.get("min"),
            "max_qty": amount.get("max"),
            "min_notional": cost.get("min"),
        }
        return cls.from_exchange_info(info, fallback)

    def rules(self) -> SymbolRules:
        """The domain's view (tick, step, min qty, min notional, max qty), values normalised ("0.01", not
        "0.01000000"; equal either way). No LOT_SIZE maximum means SymbolRules' default maximum."""
        return SymbolRules(
            symbol=self.symbol,
            base=self.base,
            quote=self.quote,
            tick_size=_plain(self.tick_size),
            step_size=_plain(self.step_size),
            min_qty=_plain(self.min_qty),
            min_notional=_plain(self.min_notional),
            max_qty=_plain(self.max_qty) if self.max_qty > 0 else DEFAULT_MAX_QTY,
        )


def spot_filters(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, SymbolFilters]:
    """The filters of every spot market of a ccxt `load_markets()` answer, by Binance symbol id ("BTCUSDT")."""
    return {
        str(market["id"]): SymbolFilters.from_market(market)
        for market in markets.values()
        if market.get("spot") and isinstance(market.get("info"), Mapping)
    }


def _first(*candidates: object) -> Decimal:
    for candidate in candidates:
        if candidate is not None and candidate != "":
            with contextlib.suppress(ValueError, InvalidOperation):
                return to_decimal(candidate)
    return Decimal(0)


def _plain(value: Decimal) -> Decimal:
    return Decimal(fmt(value) or "0")
