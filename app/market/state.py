"""MarketState: the process's single source of market truth (tickers, candles, depth, recent trades)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from typing import Generic, TypeVar

from app.ids import now_ms
from app.market.aggregate import ZERO, CandleSeries, Rolling24h
from app.market.models import Candle, Depth, Interval, Ticker, Trade

logger = logging.getLogger(__name__)

_PCT = Decimal("0.01")
_T = TypeVar("_T")


class _SymbolData:
    """Everything MarketState holds for one symbol; every container is bounded."""

    __slots__ = ("candles", "depth", "price", "trades", "ts", "window")

    def __init__(self, trades_kept: int, candles_kept: int) -> None:
        self.price: Decimal | None = None
        self.ts = 0  # newest data timestamp (trade or depth) seen for the symbol
        self.depth: Depth | None = None
        self.trades: deque[Trade] = deque(maxlen=trades_kept)
        self.candles = {interval: CandleSeries(interval, candles_kept) for interval in Interval}
        self.window = Rolling24h()


class _Subscribers(Generic[_T]):
    """Synchronous callbacks, isolated from each other: one raising is logged and the rest still run."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[_T], None]] = []

    def add(self, callback: Callable[[_T], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def emit(self, value: _T) -> None:
        for callback in tuple(self._callbacks):  # a callback may unsubscribe itself while we iterate
            try:
                callback(value)
            except Exception:
                logger.exception("market subscriber %r failed", callback)


class MarketState:
    """Latest market data per symbol, fed by one feed, read by the UI, the API and the paper venue.

    Memory is bounded whatever the uptime: `trades_kept` recent trades and `candles_kept` candles per interval
    per symbol, at most 1440 one-minute buckets for the rolling 24 h statistics, and one depth snapshot.
    Candles roll over on the trades' own timestamps; `clock` only stamps updates for staleness checks.
    Not thread-safe: feeds and readers share the one event loop.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        clock: Callable[[], int] = now_ms,
        trades_kept: int = 200,
        candles_kept: int = 1000,
    ) -> None:
        if trades_kept < 1 or candles_kept < 1:
            raise ValueError("trades_kept and candles_kept must be at least 1")
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(symbols))
        self._clock = clock
        self._data = {symbol: _SymbolData(trades_kept, candles_kept) for symbol in self.symbols}
        self._last_update: int | None = None
        self._on_symbol: _Subscribers[str] = _Subscribers()
        self._on_trade: _Subscribers[Trade] = _Subscribers()

    # ---- writes (feeds) ---------------------------------------------------------------------------------

    def apply_trade(self, trade: Trade) -> None:
        """Record a public trade: last price, 24 h window, every interval's live candle, recent trades."""
        data = self._known(trade.symbol)
        if data is None:
            return
        data.price = trade.price
        data.ts = max(data.ts, trade.ts)
        data.trades.append(trade)
        data.window.add_trade(trade.price, trade.qty, trade.ts)
        for series in data.candles.values():
            series.add_trade(trade.price, trade.qty, trade.ts)
        self._touch()
        self._on_trade.emit(trade)
        self._on_symbol.emit(trade.symbol)

    def apply_depth(self, depth: Depth) -> None:
        """Replace the symbol's order-book snapshot; the ticker's bid/ask come from it."""
        data = self._known(depth.symbol)
        if data is None:
            return
        data.depth = depth
        data.ts = max(data.ts, depth.ts)
        self._touch()
        self._on_symbol.emit(depth.symbol)

    def backfill(self, symbol: str, interval: Interval, candles: Sequence[Candle]) -> None:
        """Install candle history (oldest first); keeps the newest `candles_kept`.

        1m history also seeds the rolling 24 h window, and gives the symbol a price if no trade has yet.
        """
        data = self._known(symbol)
        if data is None or not candles:
            return
        data.candles[interval].backfill(candles)
        if interval is Interval.M1:
            data.window.seed(candles)
        if data.price is None:
            newest = max(candles, key=lambda c: c.t)
            data.price = newest.c
            data.ts = max(data.ts, newest.t)
        self._touch()
        self._on_symbol.emit(symbol)

    def restore(
        self,
        symbol: str,
        price: Decimal | None,
        candles: Mapping[Interval, Sequence[Candle]],
        depth: Depth | None,
        trades: Sequence[Trade],
        day_minutes: Sequence[Candle] | None = None,
    ) -> None:
        """Replace everything held for `symbol` with another replica's snapshot (the cluster's feed leader,
        app/cluster/feed_leader.py): candles per interval, depth, recent trades (oldest first), the last price and
        the rolling 24 h window's minutes (`day_minutes`; default: the 1m candles). Trade subscribers are not
        called: these trades happened already (nothing matches on them again)."""
        data = self._known(symbol)
        if data is None:
            return
        fresh = _SymbolData(data.trades.maxlen or 1, data.candles[Interval.M1].kept)
        for interval, series in candles.items():
            fresh.candles[Interval(interval)].backfill(series)
        fresh.window.seed(candles.get(Interval.M1, ()) if day_minutes is None else day_minutes)
        fresh.trades.extend(trades)
        fresh.depth = depth
        fresh.price = price
        fresh.ts = max([depth.ts if depth else 0, *(t.ts for t in trades[-1:])])
        self._data[symbol] = fresh
        self._touch()
        self._on_symbol.emit(symbol)

    # ---- reads --------------------------------------------------------------------------------------------

    def day_minutes(self, symbol: str) -> list[Candle]:
        """The rolling 24 h window's one-minute buckets, oldest first (for `restore` on another replica)."""
        data = self._data.get(symbol)
        return data.window.minutes() if data is not None else []

    def last_price(self, symbol: str) -> Decimal | None:
        """The last trade price alone (cheap: the paper venue and intake ask on every order)."""
        data = self._data.get(symbol)
        return data.price if data is not None else None

    def ticker(self, symbol: str) -> Ticker | None:
        """Last price, best bid/ask and rolling 24 h statistics; None if unknown or not priced yet."""
        data = self._data.get(symbol)
        if data is None or data.price is None:
            return None
        price = data.price
        stats = data.window.stats()
        open_, high, low, volume = (
            (stats.open, stats.high, stats.low, stats.volume) if stats else (price, price, price, ZERO)
        )
        depth = data.depth
        bid = depth.bids[0][0] if depth and depth.bids else price
        ask = depth.asks[0][0] if depth and depth.asks else price
        change = ((price - open_) / open_ * 100).quantize(_PCT) if open_ else ZERO.quantize(_PCT)
        return Ticker(
            symbol=symbol,
            price=price,
            bid=bid,
            ask=ask,
            open_24h=open_,
            high_24h=max(high, price),
            low_24h=min(low, price),
            volume_24h=volume,
            change_24h_pct=change,
            ts=data.ts,
        )

    def candles(self, symbol: str, interval: Interval, limit: int = 500) -> list[Candle]:
        """The newest `limit` candles, oldest first, the live one last; [] for an unknown symbol."""
        data = self._data.get(symbol)
        return data.candles[Interval(interval)].last(limit) if data else []

    def depth(self, symbol: str, limit: int = 20) -> Depth | None:
        """The order-book snapshot cut to `limit` levels per side; None if unknown or not received yet."""
        data = self._data.get(symbol)
        if data is None or data.depth is None:
            return None
        book = data.depth
        if len(book.bids) <= limit and len(book.asks) <= limit:
            return book
        limit = max(limit, 0)
        return Depth(book.symbol, book.bids[:limit], book.asks[:limit], book.ts)

    def trades(self, symbol: str, limit: int = 50) -> list[Trade]:
        """The newest `limit` public trades, newest first; [] for an unknown symbol."""
        data = self._data.get(symbol)
        if data is None or limit <= 0:
            return []
        return list(islice(reversed(data.trades), limit))

    def last_update_ms(self) -> int | None:
        """Clock time of the last applied update of any kind (None before the first)."""
        return self._last_update

    def is_stale(self, max_age_ms: int) -> bool:
        """True when no update of any kind arrived for more than `max_age_ms` of clock time, or none ever did
        (/health's `market_data: stale`)."""
        last = self._last_update
        return last is None or self._clock() - last > max_age_ms

    # ---- subscriptions ------------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(symbol)` synchronously after every update of that symbol; returns the unsubscriber.

        Keep callbacks tiny (mark the symbol dirty): they run inside the feed's update path.
        """
        return self._on_symbol.add(callback)

    def subscribe_trades(self, callback: Callable[[Trade], None]) -> Callable[[], None]:
        """Call `callback(trade)` for every public trade (the paper venue matches resting orders on these)."""
        return self._on_trade.add(callback)

    # ---- internals ----------------------------------------------------------------------------------------

    def _known(self, symbol: str) -> _SymbolData | None:
        data = self._data.get(symbol)
        if data is None:
            logger.debug("ignoring market data for unconfigured symbol %s", symbol)
        return data

    def _touch(self) -> None:
        self._last_update = self._clock()
