"""A Binance Spot Testnet account driven through the public REST API, against the offline fake exchange: every
order type, brackets as Binance OCO, each injected fault with its named outcome, reconciliation, isolation between
users and keys, and the secret staying secret. (The adapter alone: test_binance_testnet.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import httpx
import pytest
from fastapi import FastAPI

from app.api import mount_api
from app.events import UserEvent
from app.services import Services
from app.venues.binance.client import CCXT_LOGGER
from app.venues.binance_testnet import BinanceTestnetVenue
from tests.factories import register, wait_for
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance, ccxt_config
from tests.fakes.binance.app_venues import venue_on_fake

BTC = "BTCUSDT"
D = Decimal
SECOND_KEY = "B" * 60 + "0002"
SECOND_SECRET = "C" * 60 + "0002"
ORDER_PATH = "/api/v3/order"


@dataclass
class Desk:
    """One user with a testnet account, talking to the API."""

    client: httpx.AsyncClient
    services: Services
    fake: FakeBinance
    user_id: str
    headers: dict[str, str]
    account_id: str
    api_key: str = DOC_API_KEY

    async def place(self, **fields: Any) -> dict[str, Any]:
        body = {"symbol": BTC, "side": "BUY", "type": "MARKET", "quantity": "0.01", "account_id": self.account_id}
        response = await self.client.post("/api/trading/orders", json={**body, **fields}, headers=self.headers)
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/trading/orders/{order_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def until(self, order_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        """Poll the order until it reaches one of `statuses` (execution is asynchronous)."""
        async with asyncio.timeout(timeout):
            while (order := await self.order(order_id))["status"] not in statuses:
                await asyncio.sleep(0.02)
        return order

    async def orders(self, status: str = "all") -> list[dict[str, Any]]:
        params = {"account_id": self.account_id, "status": status}
        response = await self.client.get("/api/trading/orders", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def streaming(self) -> None:
        """Start the account's worker (orders would start it too) and wait until its user-data stream is subscribed
        and its first balance snapshot mirrored."""
        assert self.services.engine.external is not None
        await self.services.engine.external.worker(self.account_id)
        await wait_for(lambda: subscribed(self.fake, self.api_key))
        async with asyncio.timeout(20):
            while True:
                params = {"account_id": self.account_id}
                rows = (await self.client.get("/api/trading/balances", params=params, headers=self.headers)).json()
                if any(row["asset"] == "BTC" for row in rows):
                    return
                await asyncio.sleep(0.02)


def subscribed(fake: FakeBinance, api_key: str) -> bool:
    return any(
        r["method"] == "userDataStream.subscribe.signature" and r.get("params", {}).get("apiKey") == api_key
        for r in fake.ws_requests
    )


def posts(fake: FakeBinance, path: str = ORDER_PATH) -> list[dict[str, str]]:
    return [r.params for r in fake.requests if r.method == "POST" and r.path == path]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        server.add_account(SECOND_KEY, SECOND_SECRET, {"USDT": "1000", "BTC": "0.1"})
        yield server


@pytest.fixture
async def created(services: Services, fake: FakeBinance) -> list[BinanceTestnetVenue]:
    """Point every Binance venue the app builds (key probe, rules, account workers) at the fake; record them."""
    made: list[BinanceTestnetVenue] = []

    def make(api_key: str, api_secret: str) -> BinanceTestnetVenue:
        venue = venue_on_fake(fake, api_key, api_secret, timeout_ms=1500)
        made.append(venue)
        return venue

    services.venues.make_binance = make
    services.accounts.make_venue = make
    return made


@pytest.fixture
async def client(services: Services, created: list[BinanceTestnetVenue]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.services = services
    mount_api(app)
    await services.engine.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield http
    finally:
        await services.engine.stop()


async def add_desk(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance, key: str = DOC_API_KEY, secret: str = DOC_SECRET
) -> Desk:
    user_id, headers = await register(client)
    body = {"venue": "binance-testnet", "api_key": key, "api_secret": secret, "label": "Testnet"}
    response = await client.post("/api/accounts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return Desk(client, services, fake, user_id, headers, response.json()["id"], key)


@pytest.fixture
async def desk(client: httpx.AsyncClient, services: Services, fake: FakeBinance) -> Desk:
    return await add_desk(client, services, fake)


async def test_a_new_account_shows_its_exchange_balances_before_any_order(desk: Desk) -> None:
    params = {"account_id": desk.account_id}
    async with asyncio.timeout(20):
        while True:
            response = await desk.client.get("/api/trading/balances", params=params, headers=desk.headers)
            balances = {row["asset"]: row["free"] for row in response.json()}
            if balances:
                break
            await asyncio.sleep(0.05)
    assert Decimal(balances["USDT"]) > 0 and "BTC" in balances
    assert posts(desk.fake) == []  # nothing was traded to get them


# ---------------------------------------------------------------------------------------------- order types


async def test_market_orders_by_quantity_and_by_quote_quantity(desk: Desk, fake: FakeBinance) -> None:
    bought = await desk.until((await desk.place())["id"], "FILLED")
    assert (bought["filled_quantity"], bought["avg_fill_price"], bought["fee"], bought["fee_asset"]) == (
        "0.01",
        "60010",
        "0.00001",
        "BTC",
    )
    [fill] = bought["fills"]
    assert (fill["price"], fill["quantity"], fill["fee"], fill["fee_asset"], fill["liquidity"]) == (
        "60010",
        "0.01",
        "0.00001",
        "BTC",
        "TAKER",
    )
    by_quote = await desk.until((await desk.place(quantity=None, quote_quantity="100"))["id"], "FILLED")
    assert by_quote["filled_quantity"] == "0.00166"  # 100 USDT / 60010, down to the step size
    sold = await desk.until((await desk.place(side="SELL", quantity="0.02"))["id"], "FILLED")
    assert sold["fee_asset"] == "USDT" and D(sold["fee"]) == D("0.02") * D("59990") * D("0.001")

    sent = posts(fake)
    assert [(p["type"], p.get("quantity"), p.get("quoteOrderQty")) for p in sent] == [
        ("MARKET", "0.01", None),
        ("MARKET", None, "100"),
        ("MARKET", "0.02", None),
    ]
    # newClientOrderId is our client order id; one exchange order per order of ours.
    at_exchange = [o.client_order_id for o in fake.orders(DOC_API_KEY)]
    assert at_exchange == [bought["client_order_id"], by_quote["client_order_id"], sold["client_order_id"]]
    assert all(cid == f"tw{order['id']}" for cid, order in zip(at_exchange, (bought, by_quote, sold), strict=True))


async def test_resting_limit_records_each_partial_fill_from_the_user_data_stream(desk: Desk, fake: FakeBinance) -> None:
    await desk.streaming()
    order = await desk.place(type="LIMIT", price="59000", quantity="0.03")
    await desk.until(order["id"], "OPEN")
    assert posts(fake)[-1]["timeInForce"] == "GTC"
    fake.trade(BTC, "58990", "0.01")
    partial = await desk.until(order["id"], "PARTIALLY_FILLED")
    assert [(f["quantity"], f["fee"], f["fee_asset"], f["liquidity"]) for f in partial["fills"]] == [
        ("0.01", "0.00001", "BTC", "MAKER")
    ]
    fake.trade(BTC, "59000", "1")
    filled = await desk.until(order["id"], "FILLED")
    trades = fake.orders(DOC_API_KEY)[0].fills
    assert [(f["quantity"], f["price"], f["fee"], f["fee_asset"]) for f in filled["fills"]] == [
        ("0.01", "59000", "0.00001", "BTC"),
        ("0.02", "59000", "0.00002", "BTC"),
    ]
    assert (filled["fee"], filled["fee_asset"]) == ("0.00003", "BTC")
    fills = await desk.client.get("/api/trading/fills", params={"account_id": desk.account_id}, headers=desk.headers)
    assert sorted(f["quantity"] for f in fills.json()) == ["0.01", "0.02"]
    assert len(trades) == 2
    # No reconciliation ran: the fills came from executionReports, one by one.
    assert not [r for r in fake.requests if r.path == "/api/v3/myTrades"]


async def test_limit_ioc_and_fok(desk: Desk, fake: FakeBinance) -> None:
    fake.set_book(BTC, bids=[("59990", "1")], asks=[("60010", "0.1"), ("60020", "0.1")])
    ioc = await desk.place(type="LIMIT", price="60010", quantity="0.15", time_in_force="IOC")
    expired = await desk.until(ioc["id"], "EXPIRED")
    assert expired["filled_quantity"] == "0.1" and len(expired["fills"]) == 1

    fake.set_book(BTC, bids=[("59990", "1")], asks=[("60010", "0.1"), ("60020", "0.1")])
    fok_miss = await desk.until(
        (await desk.place(type="LIMIT", price="60010", quantity="0.15", time_in_force="FOK"))["id"], "EXPIRED"
    )
    assert fok_miss["filled_quantity"] == "0" and fok_miss["fills"] == []
    fok_hit = await desk.until(
        (await desk.place(type="LIMIT", price="60020", quantity="0.15", time_in_force="FOK"))["id"], "FILLED"
    )
    assert [(f["price"], f["quantity"]) for f in fok_hit["fills"]] == [("60010", "0.1"), ("60020", "0.05")]
    assert [p["timeInForce"] for p in posts(fake)] == ["IOC", "FOK", "FOK"]


async def test_stop_loss_and_take_profit_orders_rest_at_the_exchange_and_fill_when_triggered(
    desk: Desk, fake: FakeBinance
) -> None:
    await desk.streaming()
    placed = {
        "STOP_LOSS": await desk.place(type="STOP_MARKET", side="SELL", stop_price="59500"),
        "STOP_LOSS_LIMIT": await desk.place(type="STOP_LIMIT", side="SELL", stop_price="59400", price="59300"),
        "TAKE_PROFIT": await desk.place(type="TAKE_PROFIT_MARKET", side="SELL", stop_price="60500"),
        "TAKE_PROFIT_LIMIT": await desk.place(type="TAKE_PROFIT_LIMIT", side="SELL", stop_price="60600", price="60550"),
    }
    for order in placed.values():
        await desk.until(order["id"], "OPEN")
    sent = {p["newClientOrderId"]: p for p in posts(fake)}
    for binance_type, order in placed.items():
        assert sent[order["client_order_id"]]["type"] == binance_type
    assert "price" not in sent[placed["STOP_LOSS"]["client_order_id"]]
    assert sent[placed["STOP_LOSS_LIMIT"]["client_order_id"]]["timeInForce"] == "GTC"

    fake.trade(BTC, "59500", "0.01")  # the stop-loss triggers and sells into the bids
    stop = await desk.until(placed["STOP_LOSS"]["id"], "FILLED")
    assert stop["fills"][0]["liquidity"] == "TAKER" and stop["fills"][0]["fee_asset"] == "USDT"
    assert (await desk.order(placed["STOP_LOSS_LIMIT"]["id"]))["status"] == "OPEN"
    fake.trade(BTC, "59400", "0.01")  # the stop-limit triggers; its limit 59300 is below the bids: fills
    await desk.until(placed["STOP_LOSS_LIMIT"]["id"], "FILLED")
    fake.trade(BTC, "60500", "0.01")
    await desk.until(placed["TAKE_PROFIT"]["id"], "FILLED")
    fake.trade(BTC, "60600", "0.01")  # triggers the take-profit limit; it rests at 60550 above the bids
    await wait_for(lambda: fake.orders(DOC_API_KEY)[-1].triggered)
    assert (await desk.order(placed["TAKE_PROFIT_LIMIT"]["id"]))["status"] == "OPEN"
    fake.trade(BTC, "60550", "0.01")
    take = await desk.until(placed["TAKE_PROFIT_LIMIT"]["id"], "FILLED")
    assert take["fills"][0]["liquidity"] == "MAKER"


async def test_cancel_and_cancel_all(desk: Desk, fake: FakeBinance) -> None:
    one = await desk.place(type="LIMIT", price="58000")
    two = await desk.place(type="LIMIT", price="58100")
    eth = await desk.place(symbol="ETHUSDT", type="LIMIT", price="2900", quantity="0.1")
    for order in (one, two, eth):
        await desk.until(order["id"], "OPEN")

    response = await desk.client.delete(f"/api/trading/orders/{one['id']}", headers=desk.headers)
    assert response.status_code == 202
    await desk.until(one["id"], "CANCELED")
    cancels = [r.params for r in fake.requests if r.method == "DELETE" and r.path == ORDER_PATH]
    assert cancels[-1]["origClientOrderId"] == one["client_order_id"]

    params = {"account_id": desk.account_id, "symbol": BTC}
    response = await desk.client.delete("/api/trading/orders", params=params, headers=desk.headers)
    assert response.status_code == 202 and response.json() == {"canceled": 1}
    await desk.until(two["id"], "CANCELED")
    assert (await desk.order(eth["id"]))["status"] == "OPEN"
    response = await desk.client.delete(
        "/api/trading/orders", params={"account_id": desk.account_id}, headers=desk.headers
    )
    assert response.json() == {"canceled": 1}
    await desk.until(eth["id"], "CANCELED")
    assert fake.orders(DOC_API_KEY, open_only=True) == []
    conflict = await desk.client.delete(f"/api/trading/orders/{one['id']}", headers=desk.headers)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "ORDER_NOT_OPEN"


# ---------------------------------------------------------------------------------------------- brackets (OCO)


async def legs_of(desk: Desk, entry_id: str, count: int = 2) -> list[dict[str, Any]]:
    async with asyncio.timeout(20):
        while len(legs := [o for o in await desk.orders() if o["parent_id"] == entry_id]) < count:
            await asyncio.sleep(0.02)
    return sorted(legs, key=lambda o: o["type"])  # LIMIT (take-profit), STOP_MARKET (stop-loss)


async def test_bracket_exits_are_one_binance_oco_and_one_filling_expires_the_other(
    desk: Desk, fake: FakeBinance
) -> None:
    await desk.streaming()
    entry = await desk.place(take_profit_price="61000", stop_loss_price="59000")
    await desk.until(entry["id"], "FILLED")
    take_profit, stop_loss = await legs_of(desk, entry["id"])
    await desk.until(take_profit["id"], "OPEN")
    await desk.until(stop_loss["id"], "OPEN")
    assert (take_profit["side"], take_profit["price"], take_profit["quantity"]) == ("SELL", "61000", "0.00999")
    assert (stop_loss["side"], stop_loss["stop_price"], stop_loss["quantity"]) == ("SELL", "59000", "0.00999")

    [oco] = posts(fake, "/api/v3/orderList/oco")
    assert (oco["side"], oco["quantity"]) == ("SELL", "0.00999")
    assert (oco["aboveType"], oco["abovePrice"], oco["aboveClientOrderId"]) == (
        "LIMIT_MAKER",
        "61000",
        take_profit["client_order_id"],
    )
    assert (oco["belowType"], oco["belowStopPrice"], oco["belowClientOrderId"]) == (
        "STOP_LOSS",
        "59000",
        stop_loss["client_order_id"],
    )
    listed = [o for o in fake.orders(DOC_API_KEY) if o.order_list_id >= 0]
    assert len(listed) == 2 and len({o.order_list_id for o in listed}) == 1

    fake.trade(BTC, "61000", "1")
    filled = await desk.until(take_profit["id"], "FILLED")
    assert filled["fills"][0]["liquidity"] == "MAKER"
    await desk.until(stop_loss["id"], "EXPIRED")


async def test_canceling_one_bracket_exit_cancels_both(desk: Desk, fake: FakeBinance) -> None:
    entry = await desk.place(side="SELL", take_profit_price="59000", stop_loss_price="61000")
    await desk.until(entry["id"], "FILLED")
    take_profit, stop_loss = await legs_of(desk, entry["id"])
    await desk.until(stop_loss["id"], "OPEN")
    [oco] = posts(fake, "/api/v3/orderList/oco")  # BUY exits: stop-loss above, take-profit below
    assert (oco["side"], oco["aboveType"], oco["belowType"]) == ("BUY", "STOP_LOSS", "LIMIT_MAKER")
    assert take_profit["quantity"] == "0.01"  # a SELL pays its fee in USDT: the whole quantity is covered

    await desk.client.delete(f"/api/trading/orders/{take_profit['id']}", headers=desk.headers)
    await desk.until(take_profit["id"], "CANCELED")
    await desk.until(stop_loss["id"], "CANCELED")
    assert fake.orders(DOC_API_KEY, open_only=True) == []


async def test_bracket_exits_refused_by_binance_are_rejected_with_its_words(desk: Desk, fake: FakeBinance) -> None:
    # The entry buys at 60010, so a stop-loss at 60500 is already crossed: Binance refuses the whole list.
    entry = await desk.place(take_profit_price="61000", stop_loss_price="60500")
    await desk.until(entry["id"], "FILLED")
    for leg in await legs_of(desk, entry["id"]):
        rejected = await desk.until(leg["id"], "REJECTED")
        assert rejected["reject_reason"] == "Order would trigger immediately."
    assert len(posts(fake, "/api/v3/orderList/oco")) == 1
    assert [o.order_list_id for o in fake.orders(DOC_API_KEY)] == [-1]


# ---------------------------------------------------------------------------------------------- faults


async def test_insufficient_balance_2010_is_rejected_with_the_exchange_message(desk: Desk) -> None:
    rejected = await desk.until((await desk.place(quantity="5"))["id"], "REJECTED")  # ~300k USDT, 100k available
    assert rejected["reject_reason"] == "Account has insufficient balance for requested action."


async def test_filter_failure_1013_is_rejected(desk: Desk, fake: FakeBinance) -> None:
    # Our pre-trade checks know PRICE_FILTER / LOT_SIZE / NOTIONAL; Binance has filters we do not check.
    fake.fail_next(400, path=ORDER_PATH, code=-1013, msg="Filter failure: PERCENT_PRICE_BY_SIDE")
    rejected = await desk.until((await desk.place(type="LIMIT", price="59000"))["id"], "REJECTED")
    assert rejected["reject_reason"] == "Filter failure: PERCENT_PRICE_BY_SIDE"
    assert fake.orders(DOC_API_KEY) == []


async def test_filters_are_checked_at_intake_before_any_exchange_call(desk: Desk, fake: FakeBinance) -> None:
    await desk.streaming()
    await desk.services.engine.external.idle()  # type: ignore[union-attr]  # the new account's start-up is done
    before = len(fake.requests)
    for fields, field in [
        ({"type": "LIMIT", "price": "59000.005"}, "price"),
        ({"quantity": "0.000015"}, "quantity"),
        ({"type": "LIMIT", "price": "59000", "quantity": "0.00001"}, "quantity"),  # 0.59 USDT < NOTIONAL 5
        ({"quantity": None, "quote_quantity": "4"}, "quote_quantity"),
    ]:
        body = {"symbol": BTC, "side": "BUY", "type": "MARKET", "quantity": "0.01", "account_id": desk.account_id}
        response = await desk.client.post("/api/trading/orders", json={**body, **fields}, headers=desk.headers)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    assert len(fake.requests) == before
    assert await desk.orders() == []


async def test_timestamp_refusal_1021_resyncs_and_resends_the_same_client_order_id(
    desk: Desk, fake: FakeBinance
) -> None:
    await desk.streaming()  # nothing else of this account is signing requests now
    fake.requests.clear()
    fake.reject_timestamp_next(1)
    order = await desk.until((await desk.place())["id"], "FILLED")
    assert [(r.method, r.path, r.status) for r in fake.requests if r.path in (ORDER_PATH, "/api/v3/time")] == [
        ("POST", ORDER_PATH, 400),
        ("GET", "/api/v3/time", 200),
        ("POST", ORDER_PATH, 200),
    ]
    assert {p["newClientOrderId"] for p in posts(fake)} == {order["client_order_id"]}
    assert len(fake.orders(DOC_API_KEY)) == 1


@pytest.mark.parametrize("status", [429, 418])
async def test_throttling_stops_sending_for_the_account_until_retry_after_and_tells_the_user(
    desk: Desk, fake: FakeBinance, status: int
) -> None:
    await desk.streaming()
    notices: list[UserEvent] = []
    desk.services.bus.subscribe_user(desk.user_id, lambda e: notices.append(e) if e.type == "NOTICE" else None)
    if status == 429:
        fake.rate_limit_next(path=ORDER_PATH, retry_after=1)
    else:
        fake.ban_next(path=ORDER_PATH, retry_after=1)
    first = await desk.place()
    await wait_for(lambda: notices)
    second = await desk.place(type="LIMIT", price="59000")  # queued behind the paused first one
    for order in (first, second):
        await desk.until(order["id"], "FILLED", "OPEN")
    refused = next(r for r in fake.requests if r.status == status)
    later = [r for r in fake.requests if r.api_key == DOC_API_KEY and r.at > refused.at]
    # Nothing of this account went out while it was told to wait (0.05 s: the event loop's clock resolution).
    assert later and all(r.at >= refused.at + 1 - 0.05 for r in later)
    [notice] = notices
    assert notice.data["code"] == "VENUE_THROTTLED" and notice.data["retry_after"] == 1
    assert notice.data["account_id"] == desk.account_id
    assert ("banned" if status == 418 else "rate-limited") in notice.data["message"]
    assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == [
        first["client_order_id"],
        second["client_order_id"],
    ]


async def test_server_error_after_accepting_stays_in_flight_and_is_resolved_by_client_order_id(
    desk: Desk, fake: FakeBinance
) -> None:
    fake.server_error_after_accept(status=503, path=ORDER_PATH)
    order = await desk.place(type="LIMIT", price="59000")
    resolved = await desk.until(order["id"], "OPEN")
    assert resolved["reject_reason"] is None
    assert len(posts(fake)) == 1  # never re-sent blindly
    lookups = [r.params for r in fake.requests if r.method == "GET" and r.path == ORDER_PATH]
    assert lookups and lookups[0]["origClientOrderId"] == order["client_order_id"]
    assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == [order["client_order_id"]]


async def test_timeout_after_accepting_is_resolved_without_a_second_order(desk: Desk, fake: FakeBinance) -> None:
    fake.timeout_after_accept(path=ORDER_PATH, delay=5.0)
    order = await desk.place()
    filled = await desk.until(order["id"], "FILLED")
    assert filled["filled_quantity"] == "0.01" and len(filled["fills"]) == 1
    assert len(posts(fake)) == 1 and len(fake.orders(DOC_API_KEY)) == 1


# ---------------------------------------------------------------------------------------------- reconciliation


async def test_startup_reconciliation_applies_missed_fills_and_imports_unknown_orders(
    desk: Desk, fake: FakeBinance
) -> None:
    ours = await desk.place(type="LIMIT", price="59000", quantity="0.02")
    await desk.until(ours["id"], "OPEN")
    await desk.services.engine.stop()  # down: nothing hears the stream
    fake.trade(BTC, "59000", "1")
    outside = ccxt_async.binance(ccxt_config(fake, DOC_API_KEY, DOC_SECRET))
    try:
        await outside.create_order("ETH/USDT", "limit", "sell", 0.5, 3100, {"newClientOrderId": "placed-by-hand"})
    finally:
        await outside.close()

    await desk.services.engine.start()  # start-up reconciliation
    filled = await desk.until(ours["id"], "FILLED")
    assert [(f["quantity"], f["fee"], f["fee_asset"]) for f in filled["fills"]] == [("0.02", "0.00002", "BTC")]
    async with asyncio.timeout(20):
        while not (imported := [o for o in await desk.orders("open") if o["client_order_id"] == "placed-by-hand"]):
            await asyncio.sleep(0.05)
    assert (imported[0]["symbol"], imported[0]["side"], imported[0]["type"]) == ("ETHUSDT", "SELL", "LIMIT")
    assert (imported[0]["quantity"], imported[0]["price"], imported[0]["status"]) == ("0.5", "3100", "OPEN")
    # An imported order can be canceled from Tradewind like any other.
    await desk.client.delete(f"/api/trading/orders/{imported[0]['id']}", headers=desk.headers)
    await desk.until(imported[0]["id"], "CANCELED")
    assert fake.orders(DOC_API_KEY, open_only=True) == []


# ---------------------------------------------------------------------------------------------- isolation, secrets


async def test_two_users_with_two_keys_never_see_each_others_orders(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance, desk: Desk
) -> None:
    bob = await add_desk(client, services, fake, SECOND_KEY, SECOND_SECRET)
    alices = await desk.until((await desk.place(type="LIMIT", price="59000"))["id"], "OPEN")
    bobs = await bob.until((await bob.place(type="LIMIT", price="59000", quantity="0.001"))["id"], "OPEN")
    assert [o["id"] for o in await desk.orders()] == [alices["id"]]
    assert [o["id"] for o in await bob.orders()] == [bobs["id"]]
    everything = (await client.get("/api/trading/orders", headers=bob.headers)).json()
    assert [o["id"] for o in everything] == [bobs["id"]]
    for method, url, params in [
        ("GET", f"/api/trading/orders/{alices['id']}", {}),
        ("DELETE", f"/api/trading/orders/{alices['id']}", {}),
        ("GET", "/api/trading/orders", {"account_id": desk.account_id}),
        ("GET", "/api/trading/fills", {"account_id": desk.account_id}),
        ("GET", "/api/trading/balances", {"account_id": desk.account_id}),
        ("DELETE", "/api/trading/orders", {"account_id": desk.account_id}),
        ("DELETE", f"/api/accounts/{desk.account_id}", {}),
    ]:
        response = await client.request(method, url, params=params, headers=bob.headers)
        assert response.status_code == 404, (method, url, response.text)
    stolen = await client.post(
        "/api/trading/orders",
        json={"symbol": BTC, "side": "BUY", "type": "MARKET", "quantity": "0.01", "account_id": desk.account_id},
        headers=bob.headers,
    )
    assert stolen.status_code == 404
    # At the exchange each key holds only its own orders.
    assert [o.client_order_id for o in fake.orders(DOC_API_KEY)] == [alices["client_order_id"]]
    assert [o.client_order_id for o in fake.orders(SECOND_KEY)] == [bobs["client_order_id"]]
    assert (await desk.order(alices["id"]))["status"] == "OPEN"


async def test_the_secret_never_appears_in_logs_responses_or_events(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=CCXT_LOGGER.name)  # ccxt logs every request and response at DEBUG
    responses: list[httpx.Response] = []
    original = client.send

    async def recording_send(*args: Any, **kwargs: Any) -> httpx.Response:
        response = await original(*args, **kwargs)
        responses.append(response)
        return response

    client.send = recording_send  # type: ignore[method-assign]
    desk = await add_desk(client, services, fake)
    events: list[UserEvent] = []
    services.bus.subscribe_user(desk.user_id, events.append)
    await client.get("/api/accounts", headers=desk.headers)
    await desk.until((await desk.place())["id"], "FILLED")
    await desk.until((await desk.place(quantity="5"))["id"], "REJECTED")
    fake.server_error_after_accept(path=ORDER_PATH)
    await desk.until((await desk.place(type="LIMIT", price="59000"))["id"], "OPEN")
    fake.rate_limit_next(path=ORDER_PATH, retry_after=1)
    await desk.until((await desk.place())["id"], "FILLED")
    fake.reject_timestamp_next(1)
    await desk.until((await desk.place())["id"], "FILLED")
    wrong = {"venue": "binance-testnet", "api_key": SECOND_KEY, "api_secret": DOC_SECRET}
    refused = await client.post("/api/accounts", json=wrong, headers=desk.headers)
    assert refused.json()["error"]["code"] == "EXCHANGE_REJECTED_KEY"
    await desk.services.engine.stop()

    assert any(r.name == CCXT_LOGGER.name for r in caplog.records)  # ccxt's own logs were captured
    assert any("Request" in r.getMessage() for r in caplog.records if r.name == CCXT_LOGGER.name)
    for text in [caplog.text, *(r.text for r in responses), *(json.dumps(e.data) for e in events)]:
        assert DOC_SECRET not in text and SECOND_SECRET not in text
    assert all(DOC_API_KEY not in r.text for r in responses)  # the key only shows as its hint


async def test_a_symbol_the_testnet_does_not_list_is_422(desk: Desk, fake: FakeBinance) -> None:
    body = {"symbol": "SOLUSDT", "side": "BUY", "type": "MARKET", "quantity": "1", "account_id": desk.account_id}
    response = await desk.client.post("/api/trading/orders", json=body, headers=desk.headers)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "UNKNOWN_SYMBOL",
        "message": "unknown symbol SOLUSDT",
        "field": "symbol",
    }
    assert not posts(fake)


async def test_delete_is_refused_while_an_exchange_order_is_open(desk: Desk, fake: FakeBinance) -> None:
    order = await desk.until((await desk.place(type="LIMIT", price="59000"))["id"], "OPEN")
    refused = await desk.client.delete(f"/api/accounts/{desk.account_id}", headers=desk.headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "ACCOUNT_HAS_OPEN_ORDERS"
    await desk.client.delete(f"/api/trading/orders/{order['id']}", headers=desk.headers)
    await desk.until(order["id"], "CANCELED")
    assert (await desk.client.delete(f"/api/accounts/{desk.account_id}", headers=desk.headers)).status_code == 204


async def test_one_ccxt_client_per_account_closed_on_shutdown(
    client: httpx.AsyncClient,
    services: Services,
    fake: FakeBinance,
    desk: Desk,
    created: list[BinanceTestnetVenue],
) -> None:
    bob = await add_desk(client, services, fake, SECOND_KEY, SECOND_SECRET)
    for each in (desk, bob):
        for _ in range(3):
            await each.until((await each.place(quantity="0.001"))["id"], "FILLED")
        await each.streaming()
    workers = services.engine.external.workers  # type: ignore[union-attr]
    assert set(workers) == {desk.account_id, bob.account_id}
    in_use = [worker.venue for worker in workers.values()]
    assert len({id(venue) for venue in in_use}) == 2 and all(venue in created for venue in in_use)
    # Every other client the app built (key probes, exchangeInfo for intake) is closed already.
    for venue in created:
        if venue not in in_use:
            assert venue._client.closed_by_user
    await services.engine.stop()
    for venue in created:
        assert venue._client.closed_by_user and venue._client.session is None
    await wait_for(lambda: fake.connection_count == 0)


async def test_a_deleted_account_stops_trading_and_its_client_is_closed(desk: Desk, fake: FakeBinance) -> None:
    await desk.until((await desk.place())["id"], "FILLED")
    await desk.streaming()
    external = desk.services.engine.external
    assert external is not None
    venue = external.workers[desk.account_id].venue
    assert (await desk.client.delete(f"/api/accounts/{desk.account_id}", headers=desk.headers)).status_code == 204
    assert desk.account_id not in external.workers
    assert isinstance(venue, BinanceTestnetVenue) and venue._client.closed_by_user
    await wait_for(lambda: fake.connection_count == 0)
