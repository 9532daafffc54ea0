"""MARKET_DATA=binance-testnet: drives MarketState from Binance Spot Testnet through ccxt.pro.

Per configured symbol three streams are watched (`watch_ticker`, `watch_trades`, `watch_order_book`). A stream
that fails is re-dialled with exponential backoff; while it is down, a REST poller (`fetch_ticker`,
`fetch_trades`, the depth endpoint) keeps MarketState fresh. At start-up the symbol rules come from exchangeInfo
(`load_markets`) and every interval's candle history from klines.

Numbers: ccxt parses everything to float. Wherever ccxt keeps the venue's raw strings (`info` of tickers and
trades, the implicit REST endpoints for klines and depth) they are used as is; the streamed order book exists only
as floats, so its levels go through `Decimal(repr(x))` rounded to the symbol's tick/step exponent, which removes
any float noise. MarketState never sees a float.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro

from app.config import MAINNET_HOST_MARKERS
from app.domain import SymbolRules
from app.ids import now_ms
from app.market.models import Candle, Depth, Interval, PriceLevel, Trade
from app.market.state import MarketState

logger = logging.getLogger(__name__)

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

Sleep = Callable[[float], Awaitable[None]]


class Backoff:
    """Exponential reconnect delays: base, 2*base, 4*base ... capped; reset after a success."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._failures = 0

    def next(self) -> float:
        """The delay before the next attempt; each call doubles it up to the cap."""
        delay = min(self.cap, self.base * 2.0**self._failures)
        if delay < self.cap:
            self._failures += 1
        return delay

    def reset(self) -> None:
        """Back to `base` (called after a successful receive)."""
        self._failures = 0


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


def ccxt_config(
    rest_url: str, stream_url: str, ws_api_url: str | None = None, *, rate_limit: bool = True
) -> dict[str, Any]:
    """The `ccxt.pro.binance` constructor options for a spot testnet (or a local fake) at these base URLs.

    Sandbox mode copies `urls['test']` over `urls['api']`, so the override goes into `urls.test` (overrides of
    `urls.api` made before sandbox mode would be lost). Spot-only options keep `load_markets` from calling
    futures exchangeInfo and the sapi endpoints, which the testnet does not have.
    """
    rest, stream = rest_url.rstrip("/"), stream_url.rstrip("/")
    ws_api = (ws_api_url or stream_url).rstrip("/")
    return {
        "sandbox": True,
        "enableRateLimit": rate_limit,
        "urls": {
            "test": {
                "public": rest + "/api/v3",
                "private": rest + "/api/v3",
                "v1": rest + "/api/v1",
                # ccxt appends "/<n>"; a path with "/stream" marks the connection as spot for ccxt's id lookups.
                "ws": {
                    "spot": stream + "/stream",
                    "margin": stream + "/stream",
                    "ws-api": {"spot": ws_api + "/ws-api/v3"},
                },
            }
        },
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
    }


class CcxtMarketFeed:
    """Drives MarketState (and the shared symbol-rules mapping) from Binance Spot through ccxt.pro.

    Life cycle: `await start()` loads rules and history and then runs the streams in a background task;
    `await close()` stops it and closes the ccxt client. `load()` and `run()` are the two halves, for callers
    that schedule the task themselves.

    `rules` is updated **in place** by `load()`: services that hold the same mapping (the API, order intake, the
    paper venue) see the venue's filters without being rebuilt. Symbols the venue does not list are removed.

    `sleep` is used for every wait (backoff, polling) so tests can run the reconnect logic without real delays.
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
        self._backoff = (backoff_base, backoff_cap)
        self._start_attempts = start_attempts
        self._rate_limit = rate_limit
        self._sleep = sleep
        self._clock = clock
        self._feeds: dict[str, _SymbolFeed] = {}
        self._down: set[tuple[str, StreamKind]] = set()
        self._exchange: Any = None
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            await exchange.close()

    async def load(self) -> None:
        """Start-up: symbol rules from exchangeInfo, recent trades, candle history of every interval, a depth
        snapshot and the venue ticker. Network failures are retried with backoff `start_attempts` times."""
        if self._exchange is None:
            self._exchange = ccxtpro.binance(
                ccxt_config(self.rest_url, self.stream_url, self.ws_api_url, rate_limit=self._rate_limit)
            )
        backoff = Backoff(*self._backoff)
        for attempt in range(1, self._start_attempts + 1):
            try:
                await self._load_rules()
                break
            except Exception as exc:
                if attempt == self._start_attempts:
                    raise
                delay = backoff.next()
                logger.warning("loading Binance markets failed (%s); retry %d in %.1fs", exc, attempt, delay)
                await self._sleep(delay)
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

    # ---- start-up -----------------------------------------------------------------------------------------

    async def _load_rules(self) -> None:
        markets = await self._exchange.load_markets()
        by_id: dict[str, dict[str, Any]] = {
            m["id"]: m for m in markets.values() if m.get("spot") and isinstance(m.get("info"), dict)
        }
        loaded: dict[str, SymbolRules] = {}
        for symbol in self.state.symbols:
            market = by_id.get(symbol)
            if market is None:
                logger.error("symbol %s is not listed on the venue: no market data, no orders", symbol)
                continue
            loaded[symbol] = rules_from_market(market)
            self._feeds.setdefault(symbol, _SymbolFeed(symbol, market["symbol"]))
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
            batch = await self._exchange.public_get_klines(params)
            rows = list(batch) + rows
            if len(batch) < page:
                break  # the venue has no older history
            end = int(batch[0][0]) - 1
        return [
            Candle(int(r[0]), to_decimal(r[1]), to_decimal(r[2]), to_decimal(r[3]), to_decimal(r[4]), to_decimal(r[5]))
            for r in rows
        ]

    # ---- streams ------------------------------------------------------------------------------------------

    async def _watch(self, symbol: str, kind: StreamKind) -> None:
        feed = self._feeds[symbol]
        backoff = Backoff(*self._backoff)
        while True:
            try:
                if kind == "ticker":
                    data: Any = await self._exchange.watch_ticker(feed.unified)
                elif kind == "trades":
                    data = await self._exchange.watch_trades(feed.unified)
                else:
                    data = await self._exchange.watch_order_book(feed.unified, self.depth_levels)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.stream_failures += 1
                delay = backoff.next()
                if (symbol, kind) not in self._down:
                    self._down.add((symbol, kind))
                    logger.warning("%s %s stream failed (%s); REST polling until it is back", symbol, kind, exc)
                logger.debug("%s %s stream: reconnecting in %.2fs", symbol, kind, delay)
                await self._sleep(delay)
                continue
            backoff.reset()
            if (symbol, kind) in self._down:
                self._down.discard((symbol, kind))
                self.stats.stream_recoveries += 1
                logger.info("%s %s stream is back", symbol, kind)
            self.stats.stream_messages += 1
            try:
                if kind == "ticker":
                    self._apply_ticker(feed, data["info"])
                elif kind == "trades":
                    self._apply_stream_trades(feed, data)
                else:
                    self._apply_book(feed, data)
            except Exception:  # one malformed message must not stop the stream
                logger.exception("could not apply %s %s update", symbol, kind)

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
        levels = self.depth_levels
        bids = tuple((float_decimal(p, tick), float_decimal(q, step)) for p, q, *_ in book["bids"][:levels])
        asks = tuple((float_decimal(p, tick), float_decimal(q, step)) for p, q, *_ in book["asks"][:levels])
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
                    logger.warning("REST poll of %s %s failed: %s", symbol, kind, exc)

    async def _poll(self, symbol: str, kind: StreamKind) -> None:
        """One REST read of a symbol's ticker, recent trades or depth, applied like a stream update."""
        feed = self._feeds[symbol]
        self.stats.rest_polls += 1
        if kind == "trades":
            trades = await self._exchange.fetch_trades(feed.unified, None, RECENT_TRADES)
            for item in sorted(trades, key=lambda t: int(t["info"]["T"])):
                trade = trade_from_info(symbol, item["info"])
                if trade.ts > feed.last_trade_ts:  # aggregate ids are not trade ids: compare times
                    self._apply_trade(feed, trade)
        elif kind == "book":
            raw = await self._exchange.public_get_depth({"symbol": symbol, "limit": self.depth_levels})
            now = self._clock()
            feed.last_message_ms["book"] = now
            self.state.apply_depth(Depth(symbol, raw_levels(raw["bids"]), raw_levels(raw["asks"]), now))
        else:
            ticker = await self._exchange.fetch_ticker(feed.unified)
            self._apply_ticker(feed, ticker["info"])


# ---- conversions (pure) -------------------------------------------------------------------------------------


def refuse_mainnet(*urls: str) -> None:
    """Tradewind reads testnets only: raise ValueError for a Binance production host, even if the settings'
    own check was bypassed (a feed built directly, as tests and benchmarks do)."""
    for url in urls:
        host = (urlsplit(url).hostname or "").lower()
        if any(marker in host for marker in MAINNET_HOST_MARKERS):
            raise ValueError(f"{host} is a Binance mainnet host; Tradewind trades on testnets only")


def to_decimal(value: object) -> Decimal:
    """A venue number as an exact Decimal: strings as sent, floats through their shortest repr."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise ValueError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def float_decimal(value: object, grid: Decimal | None) -> Decimal:
    """A float from ccxt's parsed order book as a Decimal, rounded to the exponent of the symbol's tick/step
    (ccxt keeps no raw strings for books; this drops any binary noise beyond the venue's own precision)."""
    result = to_decimal(value)
    if grid is not None and grid > 0:
        result = result.quantize(grid)  # quantize uses only the grid's exponent
    return result


def plain_decimal(raw: object) -> Decimal:
    """A filter value like "0.01000000" as Decimal("0.01") (trailing zeros dropped, never exponent notation)."""
    value = to_decimal(raw)
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


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


def rules_from_market(market: Mapping[str, Any]) -> SymbolRules:
    """SymbolRules from a ccxt market, read from the raw exchangeInfo filters.

    ccxt's binance uses the TICK_SIZE precision mode, so `market['precision']` holds float tick sizes (0.01),
    not digit counts; the filters' strings are exact, so they are preferred and the precision/limits floats
    are only a fallback for a filter the venue omits.
    """
    info = market["info"]
    filters = {f.get("filterType"): f for f in info.get("filters", []) if isinstance(f, dict)}
    price_filter = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}

    def first(*candidates: object) -> Decimal:
        for candidate in candidates:
            if candidate is not None and candidate != "":
                with contextlib.suppress(ValueError, InvalidOperation):
                    return plain_decimal(candidate)
        return Decimal(0)

    max_qty = first(lot.get("maxQty"), (limits.get("amount") or {}).get("max"))
    return SymbolRules(
        symbol=str(market["id"]),
        base=str(info.get("baseAsset") or market["baseId"]),
        quote=str(info.get("quoteAsset") or market["quoteId"]),
        tick_size=first(price_filter.get("tickSize"), precision.get("price")),
        step_size=first(lot.get("stepSize"), precision.get("amount")),
        min_qty=first(lot.get("minQty"), (limits.get("amount") or {}).get("min")),
        min_notional=first(notional.get("minNotional"), (limits.get("cost") or {}).get("min")),
        max_qty=max_qty if max_qty > 0 else Decimal("9000000"),
    )


def raw_levels(levels: Sequence[Sequence[object]]) -> tuple[PriceLevel, ...]:
    """Raw `[["price", "qty"], ...]` depth levels as Decimal pairs."""
    return tuple((to_decimal(level[0]), to_decimal(level[1])) for level in levels)
