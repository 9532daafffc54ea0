"""/api/market: public market data (no auth), straight from MarketState."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import ServicesDep
from app.api.schemas import ERROR_RESPONSES, CandlePublic, DepthPublic, SymbolPublic, TickerPublic, TradePublic
from app.domain import fmt, normalize_symbol
from app.errors import NotFound
from app.market.models import Interval
from app.services import Services

router = APIRouter(prefix="/api/market", tags=["market"], responses=ERROR_RESPONSES)

# `BTC/USDT` and lower case are accepted and normalised; an unconfigured symbol is 404 UNKNOWN_SYMBOL.
SymbolPath = Annotated[str, Path(description="A configured symbol such as BTCUSDT", examples=["BTCUSDT"])]


def _known(services: Services, raw: str) -> str:
    symbol = normalize_symbol(raw)
    if symbol not in services.market.symbols:
        raise NotFound(f"Unknown symbol {symbol}.", code="UNKNOWN_SYMBOL", field="symbol")
    return symbol


def _s(value: object) -> str:
    return fmt(value) or "0"  # type: ignore[arg-type]


@router.get("/symbols")
async def symbols(services: ServicesDep) -> list[SymbolPublic]:
    return [
        SymbolPublic(
            symbol=rules.symbol,
            base=rules.base,
            quote=rules.quote,
            tick_size=_s(rules.tick_size),
            step_size=_s(rules.step_size),
            min_qty=_s(rules.min_qty),
            min_notional=_s(rules.min_notional),
        )
        for symbol in services.market.symbols
        if (rules := services.rules.get(symbol)) is not None
    ]


@router.get("/ticker/{symbol:path}")
async def ticker(symbol: SymbolPath, services: ServicesDep) -> TickerPublic:
    found = services.market.ticker(_known(services, symbol))
    if found is None:
        raise NotFound("No market data for this symbol yet.", code="NO_MARKET_DATA", field="symbol")
    return TickerPublic(
        symbol=found.symbol,
        price=_s(found.price),
        bid=_s(found.bid),
        ask=_s(found.ask),
        open_24h=_s(found.open_24h),
        high_24h=_s(found.high_24h),
        low_24h=_s(found.low_24h),
        volume_24h=_s(found.volume_24h),
        change_24h_pct=_s(found.change_24h_pct),
        ts=found.ts,
    )


@router.get("/candles/{symbol:path}")
async def candles(
    symbol: SymbolPath,
    services: ServicesDep,
    interval: Interval = Interval.M1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[CandlePublic]:
    """OHLCV, oldest first; the last candle is the live one."""
    rows = services.market.candles(_known(services, symbol), interval, limit)
    return [CandlePublic(t=c.t, o=_s(c.o), h=_s(c.h), l=_s(c.l), c=_s(c.c), v=_s(c.v)) for c in rows]


@router.get("/depth/{symbol:path}")
async def depth(
    symbol: SymbolPath, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> DepthPublic:
    known = _known(services, symbol)
    book = services.market.depth(known, limit)
    if book is None:
        return DepthPublic(symbol=known, bids=[], asks=[], ts=0)
    return DepthPublic(
        symbol=known,
        bids=[[_s(p), _s(q)] for p, q in book.bids],
        asks=[[_s(p), _s(q)] for p, q in book.asks],
        ts=book.ts,
    )


@router.get("/trades/{symbol:path}")
async def trades(
    symbol: SymbolPath, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[TradePublic]:
    """Recent public trades, newest first."""
    rows = services.market.trades(_known(services, symbol), limit)
    return [TradePublic(price=_s(t.price), qty=_s(t.qty), side=t.side, ts=t.ts) for t in rows]
