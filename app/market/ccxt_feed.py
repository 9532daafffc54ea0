"""MARKET_DATA=binance-testnet: drives MarketState from Binance Spot Testnet through ccxt.pro.

Per configured symbol three streams are watched (`watch_ticker`, `watch_trades`, `watch_order_book`). A stream
that fails is re-dialled with exponential backoff (app/retry.py); while it is down, a REST poller (`fetch_ticker`,
`fetch_trades`, the depth endpoint) keeps MarketState fresh. At start-up the symbol rules come from exchangeInfo
(`load_markets`) and every interval's candle history from klines.

The Binance specifics live in app/venues/binance/: the client (testnet URLs, mainnet guard, timeouts and
keepalive), exchangeInfo -> SymbolRules (rules.py), error mapping (errors.py) and the payload conversions
(market_data.py). Every REST call is bounded (`timeout_ms`, and `call_timeout` around it); a silent stream is
declared dead by the client's keepalive, not by a read timeout (a quiet symbol may legitimately send nothing).
ccxt's exception text (URLs) is never logged: failures are translated to VenueError first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from app.domain import SymbolRules
from app.errors import VenueThrottled, VenueUnavailable
from app.ids import now_ms
from app.market.models import Candle, Depth, Interval, Trade
from app.market.state import MarketState
from app.retry import RetryPolicy, Sleep, reconnect_forever, retry
from app.tasks import cancel_and_wait
from app.venues.binance.client import (
    DEFAULT_KEEPALIVE_MS,
    DEFAULT_TIMEOUT_MS,
    TradewindBinance,
    build_client,
    call_timeout,
    refuse_mainnet,
)
from app.venues.binance.errors import from_ccxt, safe_message, venue_error
from app.venues.binance.market_data import (
    VenueTicker,
    book_levels,
    candles_from_klines,
    raw_levels,
    ticker_from_info,
    trade_from_info,
)
from app.venues.binance.rules import spot_filters

logger = logging.getLogger(__name__)

T = TypeVar("T")
StreamKind = Literal["ticker", "trades", "book"]
STREAM_KINDS: tuple[StreamKind, ...] = ("ticker", "trades", "book")

# Candles fetched per interval at start-up. 1m covers a whole day so the rolling 24 h statistics are right at
# once; the others fill MarketState's default 1000 kept candles (charts ask for 500).
HISTORY_CANDLES: Mapping[Interval, int] = {
    Interval.M1: 1440,
    Interval.M5: 1000,
    Interval.H1: 1000,
    Interval.D1: 1000,
    Interval.W1: 1000,
}
KLINES_PAGE = 1000  # Binance's maximum per klines request
RECENT_TRADES = 50  # public trades read at start-up (and per REST poll)

__all__ = ["HISTORY_CANDLES", "STREAM_KINDS", "CcxtMarketFeed", "FeedStats", "StreamKind", "VenueTicker"]


@dataclass
class FeedStats:
    """Counters for /health-style diagnostics and tests."""

    stream_messages: int = 0
    stream_failures: int = 0
    stream_recoveries: int = 0
    rest_polls: int = 0
    rest_failures: int = 0


@dataclass
class _SymbolFeed:
    """Per-symbol bookkeeping: ccxt's unified symbol and trade de-duplication marks."""

    symbol: str
    unified: str
    last_trade_id: int = -1  # stream trades carry Binance trade ids (monotonic per symbol)
    last_trade_ts: int = -1  # REST (aggTrades) ids are another sequence: de-duplicate those by time
    last_message_ms: dict[str, int] = field(default_factory=dict)


class CcxtMarketFeed:
    """Drives MarketState (and the shared symbol-rules mapping) from Binance Spot through ccxt.pro.

    Life cycle: `await start()` loads rules and history and then runs the streams in a background task;
    `await close()` stops it and closes the ccxt client. `load()` and `run()` are the two halves, for callers
    that schedule the task themselves.

    `rules` is updated **in place** by `load()`: services that hold the same mapping (the API, order intake, the
    paper venue) see the venue's filters without being rebuilt. Symbols the venue does not list are removed.

    `sleep` is used for every wait (backoff, polling) so tests can run the reconnect logic without real delays.
    `timeout_ms` bounds each REST request and WebSocket connect, `keepalive_ms` the silence of a socket.
    """

    def __init__(
        self,
        state: MarketState,
        rules: MutableMapping[str, SymbolRules],
        *,
        rest_url: str,
        stream_url: str,
        ws_api_url: str | None = None,
        depth_levels: int = 100,
        poll_interval: float = 2.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        start_attempts: int = 5,
        history: Mapping[Interval, int] = HISTORY_CANDLES,
        rate_limit: bool = True,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if depth_levels < 1 or poll_interval <= 0 or start_attempts < 1:
            raise ValueError("depth_levels and start_attempts must be >= 1 and poll_interval > 0")
        refuse_mainnet(rest_url, stream_url, *([ws_api_url] if ws_api_url else []))
        self.state = state
        self.rules = rules
        self.rest_url = rest_url
        self.stream_url = stream_url
        self.ws_api_url = ws_api_url
        self.depth_levels = depth_levels
        self.poll_interval = poll_interval
        self.history = dict(history)
        self.stats = FeedStats()
        self.venue_tickers: dict[str, VenueTicker] = {}
        self._reconnect = RetryPolicy(initial=backoff_base, maximum=backoff_cap)
        self._start = RetryPolicy(initial=backoff_base, maximum=backoff_cap, max_attempts=start_attempts)
        self._rate_limit = rate_limit
        self._timeout_ms = timeout_ms
        self._keepalive_ms = keepalive_ms
        self._call_timeout = call_timeout(timeout_ms)
        self._sleep = sleep
        self._clock = clock
        self._feeds: dict[str, _SymbolFeed] = {}
        self._down: set[tuple[str, StreamKind]] = set()
        self._exchange: TradewindBinance | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- life cycle ---------------------------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """The configured symbols the venue lists (known after `load()`)."""
        return tuple(self._feeds)

    async def start(self) -> None:
        """`load()` (with retries), then run the streams in a background task until `close()`."""
        await self.load()
        self._task = asyncio.create_task(self.run(), name="binance-market-feed")

    async def close(self) -> None:
        """Stop the streams and close the ccxt client (idempotent; safe if never started)."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            await exchange.close()

    async def load(self) -> None:
        """Start-up: symbol rules from exchangeInfo, recent trades, candle history of every interval, a depth
        snapshot and the venue ticker. Loading the rules is retried with backoff, `start_attempts` times in all;
        then VenueUnavailable (or VenueThrottled) is raised, naming the REST base URL but never ccxt's text."""
        try:
            await retry(
                self._load_rules,
                policy=self._start,
                retry_on=(VenueUnavailable, VenueThrottled),
                sleep=self._sleep,
                on_retry=lambda attempt, exc, delay: logger.warning(
                    "loading Binance markets failed (%s); retry %d in %.1fs", safe_message(exc), attempt, delay
                ),
            )
        except VenueUnavailable as exc:
            raise VenueUnavailable(f"Binance market data at {self.rest_url} unavailable: {exc.message}") from None
        await asyncio.gather(*(self._load_symbol(feed) for feed in self._feeds.values()))

    async def run(self) -> None:
        """Watch every stream of every symbol and poll REST for the ones that are down, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for symbol in self._feeds:
                for kind in STREAM_KINDS:
                    group.create_task(self._watch(symbol, kind), name=f"watch-{kind}-{symbol}")
            group.create_task(self._poll_loop(), name="binance-rest-fallback")

    def stream_up(self, symbol: str, kind: StreamKind) -> bool:
        """False while the stream has failed and not delivered again (REST polling covers it meanwhile)."""
        return (symbol, kind) not in self._down

    def last_message_ms(self, symbol: str, kind: StreamKind) -> int | None:
        """Clock time of the last data received for this symbol and stream kind (stream or REST)."""
        feed = self._feeds.get(symbol)
        return feed.last_message_ms.get(kind) if feed else None

    # ---- venue calls ----------------------------------------------------------------------------------------

    @property
    def _client(self) -> TradewindBinance:
        if self._exchange is None:
            self._exchange = build_client(
                rest_url=self.rest_url,
                stream_url=self.stream_url,
                ws_api_url=self.ws_api_url,
                timeout_ms=self._timeout_ms,
                keepalive_ms=self._keepalive_ms,
                enable_rate_limit=self._rate_limit,
            )
        return self._exchange

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """One REST call, bounded by `call_timeout`; failures become VenueErrors without ccxt's text."""
        try:
            async with asyncio.timeout(self._call_timeout):
                return await request()
        except Exception as exc:
            error = venue_error(exc)
        raise error from None

    # ---- start-up -----------------------------------------------------------------------------------------

    async def _load_rules(self) -> None:
        markets = await self._call(lambda: self._client.load_markets())
        filters = spot_filters(markets)
        unified = {str(m["id"]): str(m["symbol"]) for m in markets.values() if m.get("spot")}
        loaded: dict[str, SymbolRules] = {}
        for symbol in self.state.symbols:
            if symbol not in filters:
                logger.error("symbol %s is not listed on the venue: no market data, no orders", symbol)
                continue
            loaded[symbol] = filters[symbol].rules()
            self._feeds.setdefault(symbol, _SymbolFeed(symbol, unified[symbol]))
        # In place: every holder of this mapping sees the venue's filters.
        for symbol in [s for s in self.rules if s not in loaded]:
            del self.rules[symbol]
        self.rules.update(loaded)

    async def _load_symbol(self, feed: _SymbolFeed) -> None:
        # Recent trades first: the klines read afterwards already contain them, and MarketState's backfill
        # replaces the candles (and 24 h minutes) those trades touched, so nothing is counted twice.
        await self._poll(feed.symbol, "trades")
        for interval, count in self.history.items():
            if count > 0:
                self.state.backfill(feed.symbol, interval, await self._klines(feed, interval, count))
        await self._poll(feed.symbol, "book")
        await self._poll(feed.symbol, "ticker")

    async def _klines(self, feed: _SymbolFeed, interval: Interval, count: int) -> list[Candle]:
        """The newest `count` candles, oldest first, paging backwards 1000 at a time (raw strings, no floats)."""
        rows: list[list[Any]] = []
        end: int | None = None
        while len(rows) < count:
            page = min(KLINES_PAGE, count - len(rows))
            params: dict[str, Any] = {"symbol": feed.symbol, "interval": interval.value, "limit": page}
            if end is not None:
                params["endTime"] = end
            batch = await self._call(functools.partial(self._client.public_get_klines, params))
            rows = list(batch) + rows
            if len(batch) < page:
                break  # the venue has no older history
            end = int(batch[0][0]) - 1
        return candles_from_klines(rows)

    # ---- streams ------------------------------------------------------------------------------------------

    async def _watch(self, symbol: str, kind: StreamKind) -> None:
        """One stream, re-dialled by app/retry.py's loop; each message resets the backoff."""
        feed = self._feeds[symbol]

        async def session(connected: Callable[[], None]) -> None:
            while True:
                data = await self._receive(feed, kind)
                connected()
                self._delivered(symbol, kind)
                try:
                    self._apply(feed, kind, data)
                except Exception as exc:  # one malformed message must not stop the stream
                    if from_ccxt(exc):
                        logger.error("could not apply %s %s update: %s", symbol, kind, safe_message(exc))
                    else:
                        logger.exception("could not apply %s %s update", symbol, kind)

        def failed(error: Exception | None, delay: float) -> None:
            self.stats.stream_failures += 1
            if (symbol, kind) not in self._down:
                self._down.add((symbol, kind))
                reason = safe_message(error) if error is not None else "stream ended"
                logger.warning("%s %s stream failed (%s); REST polling until it is back", symbol, kind, reason)
            logger.debug("%s %s stream: reconnecting in %.2fs", symbol, kind, delay)

        await reconnect_forever(session, policy=self._reconnect, sleep=self._sleep, on_failure=failed)

    async def _receive(self, feed: _SymbolFeed, kind: StreamKind) -> Any:
        try:
            if kind == "ticker":
                return await self._client.watch_ticker(feed.unified)
            if kind == "trades":
                return await self._client.watch_trades(feed.unified)
            return await self._client.watch_order_book(feed.unified, self.depth_levels)
        except Exception as exc:
            error = venue_error(exc)
        raise error from None

    def _delivered(self, symbol: str, kind: StreamKind) -> None:
        if (symbol, kind) in self._down:
            self._down.discard((symbol, kind))
            self.stats.stream_recoveries += 1
            logger.info("%s %s stream is back", symbol, kind)
        self.stats.stream_messages += 1

    def _apply(self, feed: _SymbolFeed, kind: StreamKind, data: Any) -> None:
        if kind == "ticker":
            self._apply_ticker(feed, data["info"])
        elif kind == "trades":
            self._apply_stream_trades(feed, data)
        else:
            self._apply_book(feed, data)

    def _apply_stream_trades(self, feed: _SymbolFeed, trades: Iterable[Mapping[str, Any]]) -> None:
        for item in trades:
            info = item["info"]
            trade_id = int(info.get("t", info.get("a", -1)))
            trade = trade_from_info(feed.symbol, info)
            # ccxt hands each trade once, but a re-subscribe or the REST poller may have applied it already.
            if trade_id <= feed.last_trade_id or trade.ts < feed.last_trade_ts:
                continue
            feed.last_trade_id = trade_id
            self._apply_trade(feed, trade)

    def _apply_trade(self, feed: _SymbolFeed, trade: Trade) -> None:
        feed.last_trade_ts = max(feed.last_trade_ts, trade.ts)
        feed.last_message_ms["trades"] = self._clock()
        self.state.apply_trade(trade)

    def _apply_book(self, feed: _SymbolFeed, book: Mapping[str, Any]) -> None:
        rules = self.rules.get(feed.symbol)
        tick = rules.tick_size if rules else None
        step = rules.step_size if rules else None
        bids = book_levels(book["bids"], self.depth_levels, tick, step)
        asks = book_levels(book["asks"], self.depth_levels, tick, step)
        now = self._clock()
        ts = book.get("timestamp")
        feed.last_message_ms["book"] = now
        self.state.apply_depth(Depth(feed.symbol, bids, asks, int(ts) if ts else now))

    def _apply_ticker(self, feed: _SymbolFeed, info: Mapping[str, Any]) -> None:
        feed.last_message_ms["ticker"] = self._clock()
        self.venue_tickers[feed.symbol] = ticker_from_info(feed.symbol, info, self._clock())

    # ---- REST fallback ------------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            await self._sleep(self.poll_interval)
            for symbol, kind in sorted(self._down):
                if (symbol, kind) not in self._down:
                    continue  # came back while we polled another one
                try:
                    await self._poll(symbol, kind)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats.rest_failures += 1
                    logger.warning("REST poll of %s %s failed: %s", symbol, kind, safe_message(exc))

    async def _poll(self, symbol: str, kind: StreamKind) -> None:
        """One REST read of a symbol's ticker, recent trades or depth, applied like a stream update."""
        feed = self._feeds[symbol]
        self.stats.rest_polls += 1
        if kind == "trades":
            trades = await self._call(lambda: self._client.fetch_trades(feed.unified, None, RECENT_TRADES))
            for item in sorted(trades, key=lambda t: int(t["info"]["T"])):
                trade = trade_from_info(symbol, item["info"])
                if trade.ts > feed.last_trade_ts:  # aggregate ids are not trade ids: compare times
                    self._apply_trade(feed, trade)
        elif kind == "book":
            request = {"symbol": symbol, "limit": self.depth_levels}
            raw = await self._call(lambda: self._client.public_get_depth(dict(request)))
            now = self._clock()
            feed.last_message_ms["book"] = now
            self.state.apply_depth(Depth(symbol, raw_levels(raw["bids"]), raw_levels(raw["asks"]), now))
        else:
            ticker = await self._call(lambda: self._client.fetch_ticker(feed.unified))
            self._apply_ticker(feed, ticker["info"])
