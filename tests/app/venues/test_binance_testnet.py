"""BinanceTestnetVenue against the offline Binance fake: order types, fills, error mapping, the user-data stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from app.domain import OrderStatus, SymbolRules
from app.errors import VenueRejected, VenueThrottled, VenueUnavailable
from app.retry import RECONNECT, Backoff, RetryPolicy
from app.venues.base import OcoSpec, OrderSpec, VenueBalance, VenueOrder
from app.venues.binance_testnet import BinanceTestnetVenue
from tests.fakes.binance import DEFAULT_SYMBOLS, DOC_API_KEY, DOC_SECRET, FakeBinance
from tests.fakes.binance.app_venues import venue_on_fake

BTC = "BTCUSDT"
D = Decimal
OTHER_KEY = "K" * 60 + "0002"
OTHER_SECRET = "S" * 60 + "0002"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Collects what `watch` delivers."""

    def __init__(self) -> None:
        self.orders: list[VenueOrder] = []
        self.balances: list[list[VenueBalance]] = []

    async def on_order(self, order: VenueOrder) -> None:
        self.orders.append(order)

    async def on_balances(self, balances: list[VenueBalance]) -> None:
        self.balances.append(balances)

    def of(self, client_order_id: str) -> list[VenueOrder]:
        return [o for o in self.orders if o.client_order_id == client_order_id]


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll until `predicate()` is truthy (the stream delivers asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def venue(fake: FakeBinance, clock: FakeClock) -> AsyncIterator[BinanceTestnetVenue]:
    adapter = venue_on_fake(fake, clock=clock)
    await adapter.load_rules()
    yield adapter
    await adapter.close()


@contextlib.asynccontextmanager
async def watching(venue: BinanceTestnetVenue, recorder: Recorder) -> AsyncIterator[asyncio.Task[None]]:
    """Run `venue.watch` until the block ends; enter once subscribed (the first balance snapshot arrived)."""
    task = asyncio.create_task(venue.watch(recorder.on_order, recorder.on_balances))
    try:
        await wait_until(lambda: recorder.balances)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def spec(cid: str, type_: str = "LIMIT", side: str = "BUY", qty: str | None = "0.1", **fields: str) -> OrderSpec:
    return OrderSpec(
        client_order_id=cid,
        symbol=fields.pop("symbol", BTC),
        side=side,
        type=type_,
        quantity=D(qty) if qty is not None else None,
        **{name: D(value) if name != "time_in_force" else value for name, value in fields.items()},  # type: ignore[arg-type]
    )


def subscriptions(fake: FakeBinance) -> int:
    return sum(1 for r in fake.ws_requests if r["method"] == "userDataStream.subscribe.signature")


def order_posts(fake: FakeBinance) -> list[dict[str, str]]:
    return [r.params for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order"]


# ---------------------------------------------------------------------------------------------- rules, credentials


async def test_rules_from_exchange_info_are_exact(venue: BinanceTestnetVenue) -> None:
    rules = await venue.load_rules()
    for s in DEFAULT_SYMBOLS:
        assert rules[s.symbol] == SymbolRules(
            s.symbol, s.base, s.quote, s.tick_size, s.step_size, s.min_qty, s.min_notional, s.max_qty
        )
    assert str(rules[BTC].tick_size) == "0.01" and str(rules[BTC].step_size) == "0.00001"
    assert str(rules[BTC].min_notional) == "5"


async def test_check_credentials_passes_the_exchanges_words(fake: FakeBinance) -> None:
    good = venue_on_fake(fake)
    await good.check_credentials()
    await good.close()
    cases = [
        ("short-key", DOC_SECRET, "API-key format invalid."),
        ("A" * 64, DOC_SECRET, "Invalid API-key, IP, or permissions for action."),
        (DOC_API_KEY, "wrong-secret", "Signature for this request is not valid."),
    ]
    for key, secret, words in cases:
        probe = venue_on_fake(fake, key, secret)
        with pytest.raises(VenueRejected) as caught:
            await probe.check_credentials()
        assert caught.value.message == words
        await probe.close()


# ---------------------------------------------------------------------------------------------- order types


async def test_market_orders_by_quantity_and_by_quote(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    bought = await venue.submit(spec("mkt-qty", "MARKET", qty="1.5"))
    assert bought.status is OrderStatus.FILLED and bought.filled_quantity == D("1.5")
    assert [(f.price, f.quantity, f.fee, f.fee_asset, f.liquidity) for f in bought.fills] == [
        (D("60010"), D("1"), D("0.001"), "BTC", "TAKER"),
        (D("60020"), D("0.5"), D("0.0005"), "BTC", "TAKER"),
    ]
    [placed] = fake.orders(DOC_API_KEY)
    assert [f.trade_id for f in bought.fills] == [str(f.trade_id) for f in placed.fills]
    assert bought.venue_order_id == str(placed.order_id)

    by_quote = await venue.submit(spec("mkt-quote", "MARKET", qty=None, quote_quantity="1000"))
    assert by_quote.status is OrderStatus.FILLED
    assert by_quote.filled_quantity == D("0.01666")  # 1000 / 60030, down to the step
    sent = order_posts(fake)[-1]
    assert sent["quoteOrderQty"] == "1000" and "quantity" not in sent
    assert sent["newClientOrderId"] == "mkt-quote" and sent["newOrderRespType"] == "FULL"

    sold = await venue.submit(spec("mkt-sell", "MARKET", side="SELL", qty="0.2"))
    assert sold.status is OrderStatus.FILLED and sold.fills[0].fee_asset == "USDT"
    assert sold.fills[0].fee == D("0.2") * D("59990") * D("0.001")


async def test_limit_gtc_ioc_fok_and_cancel(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    resting = await venue.submit(spec("gtc-1", price="59000"))
    assert (resting.status, resting.filled_quantity, resting.fills) == (OrderStatus.OPEN, D(0), ())
    assert order_posts(fake)[-1]["timeInForce"] == "GTC"
    canceled = await venue.cancel(BTC, "gtc-1")
    assert canceled.status is OrderStatus.CANCELED and canceled.client_order_id == "gtc-1"
    assert canceled.venue_order_id == resting.venue_order_id

    fake.set_book(BTC, bids=[("59990", "1")], asks=[("60010", "0.1"), ("60020", "0.1"), ("60030", "0.1")])
    ioc = await venue.submit(spec("ioc-1", qty="0.15", price="60010", time_in_force="IOC"))
    assert ioc.status is OrderStatus.EXPIRED and ioc.filled_quantity == D("0.1")
    assert [f.quantity for f in ioc.fills] == [D("0.1")]

    fok_miss = await venue.submit(spec("fok-1", qty="0.15", price="60020", time_in_force="FOK"))  # 0.1 available
    assert (fok_miss.status, fok_miss.filled_quantity, fok_miss.fills) == (OrderStatus.EXPIRED, D(0), ())
    fok_hit = await venue.submit(spec("fok-2", qty="0.15", price="60030", time_in_force="FOK"))
    assert fok_hit.status is OrderStatus.FILLED
    assert [(f.price, f.quantity) for f in fok_hit.fills] == [(D("60020"), D("0.1")), (D("60030"), D("0.05"))]
    assert [p["timeInForce"] for p in order_posts(fake)[-3:]] == ["IOC", "FOK", "FOK"]

    with pytest.raises(VenueRejected, match=r"Unknown order sent\.") as caught:
        await venue.cancel(BTC, "gtc-1")  # already canceled
    assert caught.value.code == "VENUE_ORDER_NOT_FOUND"


async def test_stop_and_take_profit_orders_map_trigger_and_fill(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    orders = [
        spec("sl", "STOP_MARKET", side="SELL", stop_price="59500"),
        spec("sll", "STOP_LIMIT", side="SELL", stop_price="59400", price="59300"),
        spec("tp", "TAKE_PROFIT_MARKET", side="SELL", stop_price="60500"),
        spec("tpl", "TAKE_PROFIT_LIMIT", side="SELL", stop_price="60600", price="60000"),
    ]
    placed = [await venue.submit(o) for o in orders]
    assert all(o.status is OrderStatus.OPEN and not o.fills for o in placed)
    assert [(o.type, o.stop_price) for o in placed] == [
        ("STOP_MARKET", D("59500")),
        ("STOP_LIMIT", D("59400")),
        ("TAKE_PROFIT_MARKET", D("60500")),
        ("TAKE_PROFIT_LIMIT", D("60600")),
    ]
    sent = order_posts(fake)
    assert [p["type"] for p in sent] == ["STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
    assert "price" not in sent[0] and "timeInForce" not in sent[0] and sent[0]["stopPrice"] == "59500"
    assert (sent[1]["price"], sent[1]["stopPrice"], sent[1]["timeInForce"]) == ("59300", "59400", "GTC")

    fake.trade(BTC, "59500", "0.01")  # triggers the stop-loss market order only
    stop = await venue.fetch_order(BTC, "sl")
    assert stop is not None and stop.status is OrderStatus.FILLED and stop.fills[0].liquidity == "TAKER"
    assert (await venue.fetch_order(BTC, "sll")).status is OrderStatus.OPEN  # type: ignore[union-attr]
    fake.trade(BTC, "60500", "0.01")  # take-profit market triggers
    take = await venue.fetch_order(BTC, "tp")
    assert take is not None and take.status is OrderStatus.FILLED and take.filled_quantity == D("0.1")
    assert (await venue.cancel(BTC, "tpl")).status is OrderStatus.CANCELED

    with pytest.raises(VenueRejected, match=r"Order would trigger immediately\."):
        await venue.submit(spec("too-late", "STOP_MARKET", side="SELL", stop_price="60700"))


async def test_exchange_refusals_carry_binance_message(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    with pytest.raises(VenueRejected, match=r"Account has insufficient balance for requested action\."):
        await venue.submit(spec("too-big", qty="5", price="59000"))
    await venue.submit(spec("dup", price="59000"))
    with pytest.raises(VenueRejected, match=r"Duplicate order sent\."):
        await venue.submit(spec("dup", price="59000"))
    with pytest.raises(VenueRejected, match=r"Invalid symbol\."):
        await venue.fetch_order("NOPEUSDT", "x")
    assert len(fake.orders(DOC_API_KEY)) == 1


async def test_pre_trade_filter_checks_refuse_without_any_request(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    refused = {
        "tick size 0.01": spec("p1", price="59000.005"),
        "step size 0.00001": spec("p2", qty="0.000015", price="59000"),
        "below the minimum 0.00001": spec("p3", qty="0.000001", price="59000"),
        "above the maximum 9000": spec("p4", qty="9001", price="59000"),
        "order value 0.59 USDT is below the minimum 5 USDT": spec("p5", qty="0.00001", price="59000"),
        "order value 4 USDT is below the minimum 5": spec("p6", "MARKET", qty=None, quote_quantity="4"),
        "needs stop price": spec("p7", "STOP_MARKET", side="SELL"),
        "takes no price": spec("p8", "MARKET", price="59000"),
        "needs price": spec("p9", "LIMIT"),
        "exactly one of quantity and quote_quantity": spec("p10", "MARKET", quote_quantity="100"),
        "Unknown symbol": spec("p11", price="1", symbol="NOPEUSDT"),
        "time in force": spec("p12", price="59000", time_in_force="GTX"),
        "MARKET_LOT_SIZE": spec("p13", "MARKET", qty="101"),
    }
    before = len(fake.requests)
    for words, order in refused.items():
        with pytest.raises(VenueRejected, match=words):
            await venue.submit(order)
    assert len(fake.requests) == before


# ---------------------------------------------------------------------------------------------- faults


async def test_429_throttles_and_refuses_calls_until_retry_after(
    fake: FakeBinance, venue: BinanceTestnetVenue, clock: FakeClock
) -> None:
    fake.rate_limit_next(retry_after=7)
    with pytest.raises(VenueThrottled) as caught:
        await venue.submit(spec("t1", price="59000"))
    assert caught.value.retry_after == 7
    before = len(fake.requests)
    clock.now += 6.5
    with pytest.raises(VenueThrottled) as again:
        await venue.balances()
    assert again.value.retry_after == pytest.approx(0.5)
    assert len(fake.requests) == before  # refused locally
    clock.now += 0.6
    assert await venue.submit(spec("t1", price="59000"))
    # The 429 answer reached us without executing anything: one order, though two POSTs were logged.
    assert [r.status for r in fake.requests if r.path == "/api/v3/order"] == [429, 200]
    assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == ["t1"]


async def test_418_ban_uses_retry_after_or_sixty_seconds(
    fake: FakeBinance, venue: BinanceTestnetVenue, clock: FakeClock
) -> None:
    fake.ban_next(retry_after=120)
    with pytest.raises(VenueThrottled, match="banned") as caught:
        await venue.balances()
    assert caught.value.retry_after == 120
    clock.now += 119
    with pytest.raises(VenueThrottled):
        await venue.open_orders()
    clock.now += 1.5
    await venue.balances()

    fake.fail_next(418, code=-1003, msg="Way too many requests; IP banned.")  # no Retry-After header
    with pytest.raises(VenueThrottled) as no_header:
        await venue.balances()
    assert no_header.value.retry_after == 60


async def test_server_errors_are_unavailable_and_never_resent(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    fake.server_error_next(status=500)
    with pytest.raises(VenueUnavailable, match="may or may not"):
        await venue.submit(spec("s1", price="59000"))
    fake.fail_next(503, text="Service Unavailable.")
    with pytest.raises(VenueUnavailable):
        await venue.submit(spec("s2", price="59000"))
    fake.server_error_next(status=504)
    with pytest.raises(VenueUnavailable):
        await venue.balances()
    assert [p["newClientOrderId"] for p in order_posts(fake)] == ["s1", "s2"]
    # The fake answered without executing: the venue never received them.
    assert await venue.fetch_order(BTC, "s1") is None


@pytest.mark.parametrize("drop", [False, True], ids=["slow-answer", "dropped-connection"])
async def test_timeout_after_accept_is_unavailable_and_the_order_is_found_once(fake: FakeBinance, drop: bool) -> None:
    venue = venue_on_fake(fake, timeout_ms=300)
    try:
        fake.timeout_after_accept(delay=2.0, drop=drop)
        with pytest.raises(VenueUnavailable):
            await venue.submit(spec("lost-1", price="59000"))
        found = await venue.fetch_order(BTC, "lost-1")
        assert found is not None and found.status is OrderStatus.OPEN and found.client_order_id == "lost-1"
        assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == ["lost-1"]
        assert len(order_posts(fake)) == 1
    finally:
        await venue.close()


async def test_timestamp_refusal_resyncs_and_resends_the_same_order(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    fake.requests.clear()
    fake.reject_timestamp_next(1)
    placed = await venue.submit(spec("ts-1", price="59000"))
    assert placed.status is OrderStatus.OPEN
    log = [(r.method, r.path, r.status) for r in fake.requests]
    assert log == [
        ("POST", "/api/v3/order", 400),
        ("GET", "/api/v3/time", 200),
        ("POST", "/api/v3/order", 200),
    ]
    first, second = order_posts(fake)
    assert first["newClientOrderId"] == second["newClientOrderId"] == "ts-1"
    assert {k: v for k, v in first.items() if k not in ("timestamp", "signature")} == {
        k: v for k, v in second.items() if k not in ("timestamp", "signature")
    }
    assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == ["ts-1"]

    fake.reject_timestamp_next(3)  # bounded: three refusals in a row give up
    with pytest.raises(VenueRejected, match="recvWindow"):
        await venue.submit(spec("ts-2", price="59000"))
    assert [p["newClientOrderId"] for p in order_posts(fake)].count("ts-2") == 3
    assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == ["ts-1"]


# ---------------------------------------------------------------------------------------------- reads


async def test_fetch_order_has_every_fill_and_open_orders_can_be_imported(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    await venue.submit(spec("buy-1", qty="0.3", price="59000"))
    await venue.submit(spec("sell-1", side="SELL", qty="0.2", price="61000", symbol=BTC))
    await venue.submit(spec("eth-1", qty="1", price="2900", symbol="ETHUSDT"))
    fake.trade(BTC, "58990", "0.1")
    fake.trade(BTC, "58990", "0.05")
    order = await venue.fetch_order(BTC, "buy-1")
    assert order is not None and order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_quantity == D("0.15")
    assert [(f.quantity, f.price, f.fee, f.fee_asset, f.liquidity) for f in order.fills] == [
        (D("0.1"), D("59000"), D("0.0001"), "BTC", "MAKER"),
        (D("0.05"), D("59000"), D("0.00005"), "BTC", "MAKER"),
    ]
    opened = {o.client_order_id: o for o in await venue.open_orders()}
    assert set(opened) == {"buy-1", "sell-1", "eth-1"}
    sell = opened["sell-1"]
    assert (sell.side, sell.type, sell.quantity, sell.price, sell.stop_price) == (
        "SELL",
        "LIMIT",
        D("0.2"),
        D("61000"),
        None,
    )
    assert opened["eth-1"].symbol == "ETHUSDT"
    balances = {b.asset: b for b in await venue.balances()}
    assert balances["BTC"] == VenueBalance("BTC", D("1") - D("0.2") + D("0.15") - D("0.00015"), D("0.2"))


async def test_two_keys_never_see_each_others_orders(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    fake.add_account(OTHER_KEY, OTHER_SECRET, {"USDT": "1000"})
    other = venue_on_fake(fake, OTHER_KEY, OTHER_SECRET)
    mine, theirs = Recorder(), Recorder()
    try:
        async with watching(venue, mine), watching(other, theirs):
            await venue.submit(spec("mine-1", price="59000"))
            await other.submit(spec("theirs-1", qty="0.001", price="59000"))
            await wait_until(lambda: mine.of("mine-1") and theirs.of("theirs-1"))
            assert await other.fetch_order(BTC, "mine-1") is None
            assert [o.client_order_id for o in await other.open_orders()] == ["theirs-1"]
            assert [o.client_order_id for o in await venue.open_orders()] == ["mine-1"]
            with pytest.raises(VenueRejected, match=r"Unknown order sent\."):
                await other.cancel(BTC, "mine-1")
            assert {o.client_order_id for o in mine.orders} == {"mine-1"}
            assert {o.client_order_id for o in theirs.orders} == {"theirs-1"}
            assert {b.asset for b in theirs.balances[0]} == {"USDT"}
    finally:
        await other.close()


# ---------------------------------------------------------------------------------------------- user-data stream


async def test_watch_delivers_each_fill_of_a_resting_order_with_commission(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    recorder = Recorder()
    async with watching(venue, recorder):
        assert fake.ws_requests[0]["method"] == "userDataStream.subscribe.signature"
        snapshot = {b.asset: b for b in recorder.balances[0]}
        assert snapshot["USDT"] == VenueBalance("USDT", D("100000"), D(0))

        await venue.submit(spec("rest-1", qty="0.3", price="59000"))
        await wait_until(lambda: recorder.of("rest-1"))
        fake.trade(BTC, "58990", "0.1")
        fake.trade(BTC, "59000", "0.5")
        await wait_until(lambda: len(recorder.of("rest-1")) == 3)

    new, partial, filled = recorder.of("rest-1")
    assert (new.status, new.fills, new.filled_quantity) == (OrderStatus.OPEN, (), D(0))
    trades = fake.orders(DOC_API_KEY)[0].fills
    assert partial.status is OrderStatus.PARTIALLY_FILLED and partial.filled_quantity == D("0.1")
    assert filled.status is OrderStatus.FILLED and filled.filled_quantity == D("0.3")
    assert [
        (o.fills[0].trade_id, o.fills[0].quantity, o.fills[0].fee, o.fills[0].fee_asset) for o in (partial, filled)
    ] == [
        (str(trades[0].trade_id), D("0.1"), D("0.0001"), "BTC"),
        (str(trades[1].trade_id), D("0.2"), D("0.0002"), "BTC"),
    ]
    assert all(o.fills[0].liquidity == "MAKER" and o.fills[0].price == D("59000") for o in (partial, filled))
    assert all(o.venue_order_id == new.venue_order_id and o.side == "BUY" for o in (partial, filled))
    # Balances follow each execution (outboundAccountPosition).
    last_btc = [b for batch in recorder.balances for b in batch if b.asset == "BTC"][-1]
    assert last_btc.free == D("1") + D("0.3") - D("0.0003")


async def test_watch_delivers_every_report_of_a_burst(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    recorder = Recorder()
    async with watching(venue, recorder):
        fake.set_book(BTC, bids=[("59990", "1")], asks=[("60010", "0.1"), ("60020", "0.1"), ("60030", "0.1")])
        await venue.submit(spec("burst", "MARKET", qty="0.25"))  # walks three ask levels in one go
        await wait_until(lambda: recorder.of("burst") and recorder.of("burst")[-1].status is OrderStatus.FILLED)
    reports = recorder.of("burst")
    assert [o.status for o in reports] == [OrderStatus.OPEN] + [OrderStatus.PARTIALLY_FILLED] * 2 + [OrderStatus.FILLED]
    fills = [f for o in reports for f in o.fills]
    assert [(f.price, f.quantity, f.liquidity) for f in fills] == [
        (D("60010"), D("0.1"), "TAKER"),
        (D("60020"), D("0.1"), "TAKER"),
        (D("60030"), D("0.05"), "TAKER"),
    ]


async def test_watch_reconnects_with_backoff_after_a_drop_and_keeps_delivering(fake: FakeBinance) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    venue = venue_on_fake(fake, sleep=sleep)
    recorder = Recorder()
    try:
        async with watching(venue, recorder):
            await fake.drop_connections()
            await wait_until(lambda: subscriptions(fake) == 2 and len(recorder.balances) == 2)  # fresh snapshot
            assert slept == [RECONNECT.initial]
            await wait_until(lambda: fake.connection_count == 1)
            await venue.submit(spec("after-drop", price="59000"))
            fake.trade(BTC, "59000", "0.1")
            await wait_until(lambda: len(recorder.of("after-drop")) == 2)
            assert recorder.of("after-drop")[-1].status is OrderStatus.FILLED
    finally:
        await venue.close()


def test_backoff_grows_exponentially_and_resets() -> None:
    backoff = Backoff(RetryPolicy(initial=0.5, factor=2, maximum=4))
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1, 2, 4, 4]
    backoff.reset()
    assert backoff.next_delay() == 0.5


# ---------------------------------------------------------------------------------------------- secrets


async def test_secret_never_appears_in_logs_or_errors(fake: FakeBinance, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    async def expect_error(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except Exception as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected an error")

    venue = venue_on_fake(fake, timeout_ms=300)
    recorder = Recorder()
    try:
        await venue.check_credentials()
        async with watching(venue, recorder):
            await venue.submit(spec("sec-1", price="59000"))
            fake.trade(BTC, "59000", "0.05")
            await expect_error(venue.submit(spec("sec-2", qty="5", price="59000")))
            fake.server_error_next()
            await expect_error(venue.balances())
            fake.timeout_after_accept(delay=2.0)
            await expect_error(venue.submit(spec("sec-3", price="59000")))
            await fake.drop_connections()
            await wait_until(lambda: subscriptions(fake) == 2)
            fake.rate_limit_next(retry_after=1, path="/api/v3/openOrders")
            await expect_error(venue.open_orders())
        bad = venue_on_fake(fake, DOC_API_KEY, "not-the-secret-" + DOC_SECRET[::-1])
        await expect_error(bad.check_credentials())
        await bad.close()
    finally:
        await venue.close()

    assert len(errors) == 5 and recorder.of("sec-1")
    assert any("reconnecting" in r.getMessage() for r in caplog.records)
    texts = [caplog.text, repr(venue), str(venue)]
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for text in texts:
        assert DOC_SECRET not in text
        assert DOC_API_KEY not in text  # the key only ever shows as its 4+4 hint
    assert venue._client.verbose is False


# ---------------------------------------------------------------------------------------------- OCO


def oco(side: str = "SELL", qty: str = "0.1", take_profit: str = "61000", stop: str = "59000") -> OcoSpec:
    return OcoSpec("list-1", BTC, side, D(qty), "tp-1", D(take_profit), "sl-1", D(stop))


async def test_oco_places_both_exits_as_one_list_and_one_fill_expires_the_other(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    take_profit, stop_loss = await venue.submit_oco(oco())
    assert [(o.client_order_id, o.status, o.type) for o in (take_profit, stop_loss)] == [
        ("tp-1", OrderStatus.OPEN, "LIMIT_MAKER"),  # the take-profit leg is post-only on Binance
        ("sl-1", OrderStatus.OPEN, "STOP_MARKET"),
    ]
    [sent] = [r.params for r in fake.requests if r.path == "/api/v3/orderList/oco"]
    assert {k: v for k, v in sent.items() if k not in ("timestamp", "recvWindow", "signature")} == {
        "symbol": BTC,
        "side": "SELL",
        "quantity": "0.1",
        "listClientOrderId": "list-1",
        "newOrderRespType": "FULL",
        "aboveType": "LIMIT_MAKER",
        "abovePrice": "61000",
        "aboveClientOrderId": "tp-1",
        "belowType": "STOP_LOSS",
        "belowStopPrice": "59000",
        "belowClientOrderId": "sl-1",
    }
    fake.trade(BTC, "61000", "1")
    filled, expired = await venue.fetch_order(BTC, "tp-1"), await venue.fetch_order(BTC, "sl-1")
    assert filled is not None and filled.status is OrderStatus.FILLED and filled.fills[0].liquidity == "MAKER"
    assert expired is not None and expired.status is OrderStatus.EXPIRED


async def test_oco_buy_side_and_cancel_of_one_leg(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    await venue.submit_oco(oco("BUY", take_profit="59000", stop="61000"))
    sent = [r.params for r in fake.requests if r.path == "/api/v3/orderList/oco"][-1]
    assert (sent["aboveType"], sent["aboveStopPrice"], sent["belowType"], sent["belowPrice"]) == (
        "STOP_LOSS",
        "61000",
        "LIMIT_MAKER",
        "59000",
    )
    canceled = await venue.cancel(BTC, "sl-1")  # Binance answers with the whole list
    assert (canceled.client_order_id, canceled.status) == ("sl-1", OrderStatus.CANCELED)
    other = await venue.fetch_order(BTC, "tp-1")
    assert other is not None and other.status is OrderStatus.CANCELED


async def test_oco_pre_trade_checks_and_exchange_refusal(fake: FakeBinance, venue: BinanceTestnetVenue) -> None:
    before = len(fake.requests)
    for words, spec_ in {
        "tick size": oco(take_profit="61000.001"),
        "step size": oco(qty="0.000015"),
        "below the minimum 5 USDT": oco(qty="0.00001"),
        "MARKET_LOT_SIZE": oco(qty="101"),
    }.items():
        with pytest.raises(VenueRejected, match=words):
            await venue.submit_oco(spec_)
    assert len(fake.requests) == before
    with pytest.raises(VenueRejected, match=r"Order would trigger immediately\."):
        await venue.submit_oco(oco(stop="60500"))  # a SELL stop above the last price
    assert fake.orders(DOC_API_KEY) == []


async def test_server_error_after_accepting_is_unavailable_and_the_order_exists(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    fake.server_error_after_accept(status=504)
    with pytest.raises(VenueUnavailable, match="execution status unknown"):
        await venue.submit(spec("accepted-1", price="59000"))
    found = await venue.fetch_order(BTC, "accepted-1")
    assert found is not None and found.status is OrderStatus.OPEN
    assert len(order_posts(fake)) == 1
