"""The Binance testnet feed (ccxt.pro) against the offline fake Binance: streams, REST fallback, history, rules."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api import mount_api
from app.config import SettingsError, load_settings
from app.errors import VenueUnavailable
from app.market.ccxt_feed import CcxtMarketFeed
from app.market.models import Interval
from app.market.state import MarketState
from app.market.symbols import simulated_rules
from app.services import build_services
from app.venues.binance.market_data import float_decimal, to_decimal, trade_from_info
from app.venues.binance.rules import SymbolFilters
from tests.factories import wait_for
from tests.fakes.binance import FakeBinance

BTC = "BTCUSDT"
MINUTE = 60_000
TIME_SCALE = 0.01  # backoff and poll waits run at 1/100 of their nominal length


def closed_port() -> int:
    """A local port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RecordingSleep:
    """The feed's injectable sleep: records each requested delay and waits a scaled-down real time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay * TIME_SCALE)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        yield server


@pytest.fixture
def sleeper() -> RecordingSleep:
    return RecordingSleep()


FeedFactory = Callable[..., Awaitable[CcxtMarketFeed]]


@pytest.fixture
async def make_feed(fake: FakeBinance, sleeper: RecordingSleep) -> AsyncIterator[FeedFactory]:
    """Build (and later close) feeds pointed at the fake; keyword arguments override the defaults."""
    feeds: list[CcxtMarketFeed] = []

    async def build(symbols: tuple[str, ...] = (BTC, "ETHUSDT"), start: bool = True, **kwargs: Any) -> CcxtMarketFeed:
        state = MarketState(symbols)
        options: dict[str, Any] = {
            "rest_url": fake.rest_url,
            "stream_url": fake.stream_url,
            "ws_api_url": fake.ws_api_url,
            "sleep": sleeper,
            "rate_limit": False,
        }
        options.update(kwargs)
        feed = CcxtMarketFeed(state, simulated_rules(symbols), **options)
        feeds.append(feed)
        if start:
            await feed.start()
        return feed

    yield build
    for feed in feeds:
        await feed.close()


def last_price(feed: CcxtMarketFeed, symbol: str = BTC) -> Decimal | None:
    trades = feed.state.trades(symbol, 1)
    return trades[0].price if trades else None


async def until_streaming(fake: FakeBinance, feed: CcxtMarketFeed, symbol: str = BTC) -> None:
    """Print probe trades until the trade and ticker streams deliver them (subscriptions are asynchronous)."""
    probe = Decimal("61000")

    def seen() -> bool:
        ticker = feed.state.ticker(symbol)
        venue = feed.venue_tickers.get(symbol)
        return ticker is not None and ticker.price == probe and venue is not None and venue.price == probe

    for _ in range(100):
        probe += 1
        fake.trade(symbol, probe, "0.001")
        try:
            await wait_for(seen, timeout=0.2)
            return
        except AssertionError:
            continue
    raise AssertionError("the streams never delivered")


# ---- streams ---------------------------------------------------------------------------------------------


async def test_trades_ticker_and_depth_reach_market_state_as_exact_decimals(
    fake: FakeBinance, make_feed: FeedFactory
) -> None:
    feed = await make_feed(poll_interval=10_000)  # no REST polling: everything below comes from the streams
    await until_streaming(fake, feed)
    polls = feed.stats.rest_polls

    printed = fake.trade(BTC, "60005.37", "0.12345", buyer_is_maker=True)
    await wait_for(lambda: last_price(feed) == Decimal("60005.37"), what="the trade")
    trade = feed.state.trades(BTC, 1)[0]
    assert (trade.symbol, trade.price, trade.qty, trade.side, trade.ts) == (
        BTC,
        Decimal("60005.37"),
        Decimal("0.12345"),
        "SELL",  # the buyer was the maker: the taker sold
        printed.time,
    )
    assert all(isinstance(v, Decimal) for v in (trade.price, trade.qty))

    fake.set_book(BTC, bids=[("59995.01", "2.5"), ("59990", "0.00001")], asks=[("60000.99", "3.12345")])
    await wait_for(lambda: (book := feed.state.depth(BTC)) is not None and len(book.asks) == 1, what="the book")
    book = feed.state.depth(BTC)
    assert book is not None
    assert book.bids == ((Decimal("59995.01"), Decimal("2.5")), (Decimal("59990"), Decimal("0.00001")))
    assert book.asks == ((Decimal("60000.99"), Decimal("3.12345")),)
    assert all(isinstance(x, Decimal) for level in book.bids + book.asks for x in level)

    ticker = feed.state.ticker(BTC)
    assert ticker is not None
    assert (ticker.price, ticker.bid, ticker.ask) == (Decimal("60005.37"), Decimal("59995.01"), Decimal("60000.99"))
    await wait_for(lambda: feed.venue_tickers[BTC].price == Decimal("60005.37"), what="the venue ticker")
    assert isinstance(feed.venue_tickers[BTC].volume_24h, Decimal)
    assert feed.stats.rest_polls == polls
    assert all(feed.stream_up(BTC, kind) for kind in ("ticker", "trades", "book"))


async def test_depth_diffs_are_merged_into_the_book_without_new_snapshots(
    fake: FakeBinance, make_feed: FeedFactory
) -> None:
    feed = await make_feed(poll_interval=10_000)
    await until_streaming(fake, feed)
    D = Decimal

    def snapshots() -> int:
        return sum(1 for r in fake.requests if r.path == "/api/v3/depth" and r.params.get("symbol") == BTC)

    async def book_becomes(bids: list[tuple[str, str]], asks: list[tuple[str, str]], what: str) -> None:
        expected = (tuple((D(p), D(q)) for p, q in bids), tuple((D(p), D(q)) for p, q in asks))
        await wait_for(lambda: (b := feed.state.depth(BTC)) is not None and (b.bids, b.asks) == expected, what=what)

    bids = [("60000", "1"), ("59999.5", "2"), ("59998", "3")]
    asks = [("60001", "1"), ("60002.25", "2")]
    fake.set_book(BTC, bids=bids, asks=asks)
    await book_becomes(bids, asks, "the first book")
    before = snapshots()

    bids[0] = ("60000", "1.5")  # one level's size changes: a one-level diff
    fake.set_book(BTC, bids=bids, asks=asks)
    await book_becomes(bids, asks, "the changed level")

    bids = [bids[0], bids[2], ("59997", "4")]  # 59999.5 removed (qty 0 in the diff), 59997 added
    asks = [("60000.5", "0.25"), *asks]  # a better ask
    fake.set_book(BTC, bids=bids, asks=asks)
    await book_becomes(bids, asks, "the removed and added levels")

    assert snapshots() == before  # every change arrived as a depthUpdate diff, applied on the book ccxt keeps
    assert feed.stream_up(BTC, "book") and feed.stats.stream_failures == 0


async def test_dropped_streams_reconnect_with_backoff_and_updates_continue(
    fake: FakeBinance, make_feed: FeedFactory, sleeper: RecordingSleep
) -> None:
    feed = await make_feed(poll_interval=10_000)
    await until_streaming(fake, feed)
    polls = feed.stats.rest_polls

    await fake.drop_connections()
    await wait_for(lambda: not feed.stream_up(BTC, "trades"), what="the failure to be noticed")
    assert 0.5 in sleeper.delays  # the first reconnect waits backoff_base

    await until_streaming(fake, feed)  # trades and ticker flow again...
    fake.set_book(BTC, bids=[("59000", "1")], asks=[("61000", "1")])  # ...and the book was re-synchronised
    await wait_for(
        lambda: (book := feed.state.depth(BTC)) is not None and book.asks == ((Decimal("61000"), Decimal("1")),),
        what="the book after reconnecting",
    )
    assert feed.stream_up(BTC, "trades") and feed.stream_up(BTC, "book")
    assert feed.stats.stream_recoveries >= 2
    assert feed.stats.rest_polls == polls  # the streams, not the REST fallback, delivered all of it


async def test_rest_fallback_when_streams_are_unavailable(
    fake: FakeBinance, make_feed: FeedFactory, sleeper: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    feed = await make_feed(stream_url=f"ws://127.0.0.1:{closed_port()}", poll_interval=1.0, backoff_cap=4.0)

    printed = fake.trade(BTC, "60123.45", "0.5")
    await wait_for(lambda: last_price(feed) == Decimal("60123.45"), what="the polled trade")
    trade = feed.state.trades(BTC, 1)[0]
    assert (trade.qty, trade.side, trade.ts) == (Decimal("0.5"), "BUY", printed.time)

    fake.set_book(BTC, bids=[("60100.5", "0.7")], asks=[("60150.25", "1.25")])
    await wait_for(
        lambda: (book := feed.state.depth(BTC)) is not None and book.bids == ((Decimal("60100.5"), Decimal("0.7")),),
        what="the polled book",
    )
    await wait_for(lambda: feed.venue_tickers[BTC].price == Decimal("60123.45"), what="the polled ticker")
    assert not any(feed.stream_up(BTC, kind) for kind in ("ticker", "trades", "book"))
    assert feed.stats.stream_messages == 0 and feed.stats.rest_polls > 0

    # The same trade is never applied twice, however many polls see it.
    await wait_for(lambda: sleeper.delays.count(1.0) >= 5, what="more polls")
    assert [t.price for t in feed.state.trades(BTC, 50)].count(Decimal("60123.45")) == 1

    # Reconnect attempts back off exponentially up to the cap.
    await wait_for(lambda: 4.0 in sleeper.delays, what="the backoff to reach its cap")
    backoffs = [d for d in sleeper.delays if d != 1.0]
    assert {0.5, 2.0, 4.0} <= set(backoffs) and max(backoffs) == 4.0
    assert "stream failed" in caplog.text and "/stream" not in caplog.text  # our words, not ccxt's URL


# ---- start-up: rules and history ----------------------------------------------------------------------------


async def test_symbol_rules_come_from_exchange_info_and_update_the_shared_mapping(make_feed: FeedFactory) -> None:
    feed = await make_feed(symbols=(BTC, "BNBUSDT", "DOGEUSDT"), start=False)
    rules = feed.rules
    placeholder = dict(rules)
    await feed.start()

    assert feed.rules is rules  # updated in place: the API and order intake hold this very object
    assert set(rules) == {BTC, "BNBUSDT"}  # DOGEUSDT is not listed by the venue
    assert feed.symbols == (BTC, "BNBUSDT")
    btc = rules[BTC]
    assert (btc.base, btc.quote, btc.tick_size, btc.step_size, btc.min_qty, btc.min_notional, btc.max_qty) == (
        "BTC",
        "USDT",
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("0.00001"),
        Decimal("5"),
        Decimal("9000"),
    )
    assert str(btc.min_notional) == "5" and str(btc.tick_size) == "0.01"  # no "5.00000000", no exponent
    assert rules["BNBUSDT"].step_size == Decimal("0.001")
    assert placeholder["DOGEUSDT"].symbol == "DOGEUSDT"


async def test_candle_history_is_backfilled_from_klines_for_every_interval(
    fake: FakeBinance, make_feed: FeedFactory
) -> None:
    now = fake.server_time()
    minute = (now - 3 * MINUTE) // MINUTE * MINUTE
    # Two prints early in one minute (whatever the wall clock's second), one two hours before.
    prints = [(minute + 100, "59000.5", "0.1"), (minute + 1100, "59100", "0.2"), (now - 125 * MINUTE, "58000", "1")]
    for at, price, qty in prints:
        fake.clock_offset_ms = 0
        fake.clock_offset_ms = at - fake.server_time()
        fake.trade(BTC, price, qty)
    fake.clock_offset_ms = 0
    feed = await make_feed(poll_interval=10_000)

    candles_1m = {c.t: c for c in feed.state.candles(BTC, Interval.M1, 1000)}
    assert minute in candles_1m
    c = candles_1m[minute]
    assert (c.o, c.h, c.l, c.c, c.v) == (
        Decimal("59000.5"),
        Decimal("59100"),
        Decimal("59000.5"),
        Decimal("59100"),
        Decimal("0.3"),
    )
    for interval in Interval:
        history = feed.state.candles(BTC, interval, 1000)
        assert history, interval
        if interval is not Interval.W1:  # the fake opens weeks on Thursdays (epoch-aligned), Binance on Mondays
            assert sum(x.v for x in history) == Decimal("1.3"), interval  # each print counted once per interval
    ticker = feed.state.ticker(BTC)
    assert ticker is not None
    assert (ticker.price, ticker.open_24h, ticker.low_24h, ticker.volume_24h) == (
        Decimal("59100"),
        Decimal("58000"),
        Decimal("58000"),
        Decimal("1.3"),
    )
    assert [t.price for t in feed.state.trades(BTC, 10)] == [Decimal("59100"), Decimal("59000.5"), Decimal("58000")]
    klines = [r for r in fake.requests if r.path == "/api/v3/klines" and r.params["symbol"] == BTC]
    assert sorted(r.params["interval"] for r in klines) == ["1d", "1h", "1m", "1w", "5m"]


async def test_klines_history_pages_backwards_past_the_1000_row_limit(
    fake: FakeBinance, make_feed: FeedFactory
) -> None:
    for i in range(1100, 0, -1):  # one trade per minute for the last 1100 minutes
        fake.clock_offset_ms = -i * MINUTE
        fake.trade(BTC, 60000 + i, "0.01")
    fake.clock_offset_ms = 0
    feed = await make_feed(symbols=(BTC,), history={Interval.M1: 1440}, poll_interval=10_000)

    pages = [r.params for r in fake.requests if r.path == "/api/v3/klines"]
    assert [p["limit"] for p in pages] == ["1000", "440"] and "endTime" in pages[1]
    kept = feed.state.candles(BTC, Interval.M1, 1000)
    assert len(kept) == 1000  # MarketState keeps the newest 1000...
    ticker = feed.state.ticker(BTC)
    assert ticker is not None
    assert ticker.volume_24h == Decimal("11.00")  # ...but all 1100 minutes seed the 24 h window
    assert ticker.high_24h == Decimal(61100)


async def test_start_retries_then_gives_up_when_the_venue_is_unreachable(
    make_feed: FeedFactory, sleeper: RecordingSleep
) -> None:
    port = closed_port()
    with pytest.raises(VenueUnavailable, match=rf"127\.0\.0\.1:{port}") as caught:
        await make_feed(rest_url=f"http://127.0.0.1:{port}", start_attempts=3)
    assert sleeper.delays == [0.5, 1.0]
    assert "/api/v3" not in str(caught.value)  # our words and the base URL, not ccxt's request URL
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_hanging_venue_is_unavailable_after_the_timeout_and_logs_no_urls(
    fake: FakeBinance, make_feed: FeedFactory, sleeper: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    fake.timeout_after_accept(2, path="/api/v3/exchangeInfo", delay=30.0)  # answers never come in time
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(VenueUnavailable, match="did not answer") as caught:
        async with asyncio.timeout(10):  # this test's guard, not the feed's
            await make_feed(timeout_ms=300, start_attempts=2)
    assert loop.time() - started < 5
    assert sleeper.delays == [0.5]
    assert "loading Binance markets failed" in caplog.text
    for text in (caplog.text, str(caught.value)):
        assert "/api/v3" not in text and "exchangeInfo" not in text


@pytest.mark.parametrize(
    "url",
    [
        "https://api.binance.com",
        "https://api3.binance.com",
        "wss://stream.binance.com:9443",
        "wss://ws-api.binance.com:443",
        "wss://data-stream.binance.vision",
        "https://api.binance.us",
    ],
)
async def test_mainnet_hosts_are_refused(url: str) -> None:
    state = MarketState([BTC])
    rules = simulated_rules([BTC])
    local = "http://127.0.0.1:9"
    for urls in ((url, local, local), (local, url, local), (local, local, url)):
        with pytest.raises(ValueError, match="mainnet"):
            CcxtMarketFeed(state, rules, rest_url=urls[0], stream_url=urls[1], ws_api_url=urls[2])
    setting = "binance_testnet_url" if url.startswith("http") else "binance_testnet_stream_url"
    with pytest.raises(SettingsError, match="mainnet"):
        load_settings(market_data="binance-testnet", **{setting: url})
    # The testnet's own hosts are fine.
    CcxtMarketFeed(
        state,
        rules,
        rest_url="https://testnet.binance.vision",
        stream_url="wss://stream.testnet.binance.vision",
        ws_api_url="wss://ws-api.testnet.binance.vision",
    )


async def test_close_is_safe_twice_and_without_start(make_feed: FeedFactory) -> None:
    idle = await make_feed(start=False)
    await idle.close()
    running = await make_feed()
    await running.close()
    await running.close()


# ---- wiring: MARKET_DATA=binance-testnet ---------------------------------------------------------------------


async def test_services_use_the_live_feed_and_its_rules(fake: FakeBinance, database_url: str) -> None:
    settings = load_settings(
        market_data="binance-testnet",
        market_feed_enabled=True,
        symbols="BTCUSDT,ETHUSDT",
        binance_testnet_url=fake.rest_url,
        binance_testnet_stream_url=fake.stream_url,
        binance_testnet_ws_api_url=fake.ws_api_url,
    )
    fake.trade(BTC, "60001.5", "0.01")
    services = build_services(settings, migrate=False)
    assert services.simulator is None and services.feed is not None
    await services.start()
    try:
        assert services.venues.paper_rules is services.rules
        assert services.rules["ETHUSDT"].step_size == Decimal("0.0001")
        app = FastAPI()
        app.state.services = services
        mount_api(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            symbols = (await client.get("/api/market/symbols")).json()
            ticker = (await client.get("/api/market/ticker/BTCUSDT")).json()
        assert symbols[0] == {
            "symbol": "BTCUSDT",
            "base": "BTC",
            "quote": "USDT",
            "tick_size": "0.01",
            "step_size": "0.00001",
            "min_qty": "0.00001",
            "min_notional": "5",
        }
        assert (ticker["price"], ticker["bid"], ticker["ask"]) == ("60001.5", "59990", "60010")  # seeded book
    finally:
        await services.stop()


# ---- pure helpers ---------------------------------------------------------------------------------------------


def test_decimal_conversions_never_keep_floats() -> None:
    assert to_decimal("0.10000000") == Decimal("0.1")
    assert to_decimal(0.1) == Decimal("0.1")  # the shortest repr, not 0.1000000000000000055...
    assert float_decimal(60000.01, Decimal("0.01")) == Decimal("60000.01")
    assert float_decimal(0.30000000000000004, Decimal("0.001")) == Decimal("0.300")
    for bad in (None, True, float("nan"), "abc"):
        with pytest.raises(Exception):  # noqa: B017  (ValueError or InvalidOperation)
            to_decimal(bad)


def test_trade_side_follows_the_taker() -> None:
    buy = trade_from_info(BTC, {"p": "1.5", "q": "2", "T": 7, "m": False})
    sell = trade_from_info(BTC, {"price": "1.5", "qty": "2", "time": 8, "isBuyerMaker": True})
    assert (buy.side, sell.side, sell.price, sell.ts) == ("BUY", "SELL", Decimal("1.5"), 8)


def test_rules_fall_back_to_ccxt_precision_when_a_filter_is_missing() -> None:
    market = {
        "id": "XYZUSDT",
        "symbol": "XYZ/USDT",
        "baseId": "XYZ",
        "quoteId": "USDT",
        "info": {"baseAsset": "XYZ", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "stepSize": "0.1"}]},
        # ccxt's TICK_SIZE precision mode: precision values are tick sizes, not digit counts.
        "precision": {"price": 0.0001, "amount": 0.1},
        "limits": {"amount": {"min": 0.1, "max": 1000.0}, "cost": {"min": 10.0}},
    }
    rules = SymbolFilters.from_market(market).rules()
    assert (rules.tick_size, rules.step_size, rules.min_qty, rules.min_notional, rules.max_qty) == (
        Decimal("0.0001"),
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal("10"),
        Decimal("1000"),
    )
