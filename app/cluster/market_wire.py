"""The market feed leader's wire format (orjson; every Decimal as a string, so nothing is rounded): trades and
depth snapshots as they happen, and a whole MarketState snapshot (candles of every interval, depth, recent
trades, last price) for a replica that starts or becomes leader."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.market.models import Candle, Depth, Interval, PriceLevel, Trade
from app.market.state import MarketState

ALL = 1_000_000  # "every kept item" for MarketState's limits

Wire = list[Any]


def trade_out(trade: Trade) -> Wire:
    return [trade.symbol, str(trade.price), str(trade.qty), trade.side, trade.ts]


def trade_in(raw: Wire) -> Trade:
    symbol, price, qty, side, ts = raw
    return Trade(symbol, Decimal(price), Decimal(qty), side, int(ts))


def depth_out(depth: Depth) -> Wire:
    return [depth.symbol, _levels_out(depth.bids), _levels_out(depth.asks), depth.ts]


def depth_in(raw: Wire) -> Depth:
    symbol, bids, asks, ts = raw
    return Depth(symbol, _levels_in(bids), _levels_in(asks), int(ts))


def snapshot_of(market: MarketState) -> dict[str, Any]:
    """Everything MarketState holds, per symbol (JSON-ready)."""
    symbols: dict[str, Any] = {}
    for symbol in market.symbols:
        depth = market.depth(symbol, ALL)
        price = market.last_price(symbol)
        symbols[symbol] = {
            "price": None if price is None else str(price),
            "candles": {
                interval.value: [_candle_out(c) for c in market.candles(symbol, interval, ALL)] for interval in Interval
            },
            "depth": None if depth is None else depth_out(depth),
            "trades": [trade_out(t) for t in reversed(market.trades(symbol, ALL))],  # oldest first
            "day": [_candle_out(c) for c in market.day_minutes(symbol)],  # the 24 h statistics' minutes
        }
    return symbols


def restore(market: MarketState, symbols: dict[str, Any]) -> None:
    """Replace MarketState's data of every symbol the snapshot has with the snapshot's."""
    for symbol, data in symbols.items():
        if symbol not in market.symbols:
            continue
        candles = {Interval(i): [_candle_in(c) for c in rows] for i, rows in data["candles"].items()}
        depth = None if data["depth"] is None else depth_in(data["depth"])
        price = None if data["price"] is None else Decimal(data["price"])
        trades = [trade_in(t) for t in data["trades"]]
        market.restore(symbol, price, candles, depth, trades, [_candle_in(c) for c in data["day"]])


def _levels_out(levels: tuple[PriceLevel, ...]) -> Wire:
    return [[str(price), str(qty)] for price, qty in levels]


def _levels_in(raw: Wire) -> tuple[PriceLevel, ...]:
    return tuple((Decimal(price), Decimal(qty)) for price, qty in raw)


def _candle_out(c: Candle) -> Wire:
    return [c.t, str(c.o), str(c.h), str(c.l), str(c.c), str(c.v)]


def _candle_in(raw: Wire) -> Candle:
    t, o, h, low, c, v = raw
    return Candle(int(t), Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(v))
