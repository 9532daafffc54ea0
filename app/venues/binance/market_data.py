"""Binance market-data payloads -> MarketState values (pure): trades, 24 h tickers, depth levels, klines.

Wherever ccxt keeps the venue's raw strings (`info` of tickers and trades, the implicit REST endpoints for klines
and depth) they are used as is; ccxt's streamed order book exists only as floats, so its levels go through
`float_decimal`, rounded to the symbol's tick/step exponent. Nothing returned here holds a float.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.market.models import Candle, PriceLevel, Trade
from app.venues.binance.mapping import to_decimal

__all__ = [
    "VenueTicker",
    "book_levels",
    "candles_from_klines",
    "float_decimal",
    "raw_levels",
    "ticker_from_info",
    "to_decimal",
    "trade_from_info",
]


@dataclass(frozen=True, slots=True)
class VenueTicker:
    """The venue's own 24 h statistics (miniTicker / 24hr ticker), kept for reference and diagnostics.

    MarketState computes its 24 h window from the 1m history and live trades, so these are not fed into it.
    """

    symbol: str
    price: Decimal
    open_24h: Decimal
    high_24h: Decimal
    low_24h: Decimal
    volume_24h: Decimal
    quote_volume_24h: Decimal
    ts: int


def float_decimal(value: object, grid: Decimal | None) -> Decimal:
    """A float from ccxt's parsed order book as a Decimal, rounded to the exponent of the symbol's tick/step
    (ccxt keeps no raw strings for books; this drops any binary noise beyond the venue's own precision)."""
    result = to_decimal(value)
    if grid is not None and grid > 0:
        result = result.quantize(grid)  # quantize uses only the grid's exponent
    return result


def trade_from_info(symbol: str, info: Mapping[str, Any]) -> Trade:
    """A Trade from the raw trade / aggTrade (`p`, `q`, `T`, `m`) or REST trade (`price`, `qty`, `time`,
    `isBuyerMaker`) payload. Buyer is maker means the taker sold."""
    price = info.get("p", info.get("price"))
    qty = info.get("q", info.get("qty"))
    ts = info.get("T", info.get("time"))
    buyer_is_maker = info.get("m", info.get("isBuyerMaker"))
    if price is None or qty is None or ts is None or buyer_is_maker is None:
        raise ValueError(f"incomplete trade payload for {symbol}")
    return Trade(symbol, to_decimal(price), to_decimal(qty), "SELL" if buyer_is_maker else "BUY", int(ts))


def ticker_from_info(symbol: str, info: Mapping[str, Any], now: int) -> VenueTicker:
    """A VenueTicker from a miniTicker/24hrTicker stream event or a REST 24hr ticker."""

    def pick(stream_key: str, rest_key: str) -> Decimal:
        value = info.get(stream_key, info.get(rest_key))
        if value is None:
            raise ValueError(f"ticker payload for {symbol} lacks {rest_key}")
        return to_decimal(value)

    ts = info.get("E", info.get("closeTime"))
    return VenueTicker(
        symbol=symbol,
        price=pick("c", "lastPrice"),
        open_24h=pick("o", "openPrice"),
        high_24h=pick("h", "highPrice"),
        low_24h=pick("l", "lowPrice"),
        volume_24h=pick("v", "volume"),
        quote_volume_24h=pick("q", "quoteVolume"),
        ts=int(ts) if ts is not None else now,
    )


def raw_levels(levels: Sequence[Sequence[object]]) -> tuple[PriceLevel, ...]:
    """Raw `[["price", "qty"], ...]` depth levels as Decimal pairs."""
    return tuple((to_decimal(level[0]), to_decimal(level[1])) for level in levels)


def book_levels(
    levels: Sequence[Sequence[object]], limit: int, tick: Decimal | None, step: Decimal | None
) -> tuple[PriceLevel, ...]:
    """The best `limit` levels of ccxt's parsed (float) order book side as exact Decimal pairs."""
    return tuple((float_decimal(level[0], tick), float_decimal(level[1], step)) for level in levels[:limit])


def candles_from_klines(rows: Sequence[Sequence[Any]]) -> list[Candle]:
    """GET /api/v3/klines rows (open time, open, high, low, close, volume, ...; strings) as Candles."""
    return [
        Candle(int(r[0]), to_decimal(r[1]), to_decimal(r[2]), to_decimal(r[3]), to_decimal(r[4]), to_decimal(r[5]))
        for r in rows
    ]
