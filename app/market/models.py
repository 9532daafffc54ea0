"""Market data value objects shared by feeds, MarketState, the paper venue, the API and the UI. Exact decimals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

PriceLevel = tuple[Decimal, Decimal]  # (price, quantity)


class Interval(StrEnum):
    M1 = "1m"
    M5 = "5m"
    H1 = "1h"
    D1 = "1d"
    W1 = "1w"


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade. `side` is the taker's side ("BUY" lifted the ask, "SELL" hit the bid)."""

    symbol: str
    price: Decimal
    qty: Decimal
    side: str
    ts: int


@dataclass(frozen=True, slots=True)
class Depth:
    """An order-book snapshot: bids best (highest) first, asks best (lowest) first; every level has a positive
    quantity (an empty level a source sends is dropped here, once per snapshot, so that readers such as the paper
    exchange's matcher, which walks the book on every order, need not check)."""

    symbol: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    ts: int

    def __post_init__(self) -> None:
        for name in ("bids", "asks"):
            levels = getattr(self, name)
            if not all(quantity > 0 for _, quantity in levels):
                object.__setattr__(self, name, tuple(level for level in levels if level[1] > 0))


@dataclass(frozen=True, slots=True)
class Candle:
    """OHLCV; `t` is the open time in ms (UTC), aligned to the interval (1w: Monday 00:00 UTC)."""

    t: int
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741  (the API's field name)
    c: Decimal
    v: Decimal


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    price: Decimal
    bid: Decimal
    ask: Decimal
    open_24h: Decimal
    high_24h: Decimal
    low_24h: Decimal
    volume_24h: Decimal
    change_24h_pct: Decimal
    ts: int
