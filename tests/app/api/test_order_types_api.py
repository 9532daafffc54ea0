"""/api/trading: the order types beyond market/limit/stop over HTTP — post-only, modify/replace."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from app.ids import new_id
from app.open_orders import OpenOrderCounts
from app.services import Services
from tests.factories import place, register, wait_for_status


@pytest.fixture
async def trader(client: httpx.AsyncClient, running: Services) -> dict[str, str]:
    return (await register(client))[1]


def best(services: Services) -> tuple[Decimal, Decimal]:
    depth = services.market.depth("BTCUSDT")
    assert depth is not None
    return depth.bids[0][0], depth.asks[0][0]


async def test_post_only_rests_below_the_ask_and_is_rejected_at_it(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    bid, ask = best(running)
    resting = (await place(client, trader, type="LIMIT_MAKER", price=str(bid))).json()
    assert (resting["type"], resting["time_in_force"]) == ("LIMIT_MAKER", None)
    await wait_for_status(client, trader, resting["id"], "OPEN")
    taking = (await place(client, trader, type="limit_maker", price=str(ask))).json()
    rejected = await wait_for_status(client, trader, taking["id"], "REJECTED")
    assert rejected["reject_reason"] == "Order would immediately match and take."
    balances = {b["asset"]: b for b in (await client.get("/api/trading/balances", headers=trader)).json()}
    assert Decimal(balances["USDT"]["locked"]) == bid * Decimal("0.01")  # only the resting order's lock


async def resting_limit(client: httpx.AsyncClient, running: Services, trader: dict[str, str]) -> dict[str, object]:
    bid, _ = best(running)
    order = (await place(client, trader, type="LIMIT", price=str(bid - 100))).json()
    return await wait_for_status(client, trader, order["id"], "OPEN")


async def test_patch_replaces_a_working_order(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    old = await resting_limit(client, running, trader)
    price = Decimal(str(old["price"])) - 50
    response = await client.patch(
        f"/api/trading/orders/{old['id']}", json={"price": str(price), "client_order_id": "move-1"}, headers=trader
    )
    assert response.status_code == 202, response.text
    new = response.json()
    assert (new["status"], new["replaces"], new["client_order_id"]) == ("PENDING", old["id"], "move-1")
    assert (new["type"], new["side"], new["quantity"], Decimal(new["price"])) == ("LIMIT", "BUY", "0.01", price)
    assert (await wait_for_status(client, trader, new["id"], "OPEN"))["replaces"] == old["id"]
    replaced = await wait_for_status(client, trader, str(old["id"]), "REPLACED")
    assert replaced["reject_reason"] == f"replaced by order {new['id']}"
    again = await client.patch(
        f"/api/trading/orders/{old['id']}", json={"price": str(price), "client_order_id": "move-1"}, headers=trader
    )
    assert (again.status_code, again.json()["id"]) == (200, new["id"])  # a retried request creates nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "price"),
        ({"stop_price": "50000"}, "stop_price"),  # a LIMIT order has no stop price
        ({"price": "50000.001"}, "price"),
        ({"quantity": "0.000001"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"price": "abc"}, "price"),
        ({"client_order_id": "has spaces", "price": "50000"}, "client_order_id"),
        ({"side": "SELL"}, "side"),  # only price, quantity and stop price can change
        ({"client_order_id": "tw" + new_id(), "price": "50000"}, "client_order_id"),  # the form of the ids made
    ],
)
async def test_patch_refuses_bad_changes_with_422_and_changes_nothing(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str], body: dict[str, object], field: str
) -> None:
    old = await resting_limit(client, running, trader)
    response = await client.patch(f"/api/trading/orders/{old['id']}", json=body, headers=trader)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    orders = (await client.get("/api/trading/orders", headers=trader)).json()
    assert [(o["id"], o["status"]) for o in orders] == [(old["id"], "OPEN")]


async def test_patch_cannot_give_the_replacement_a_client_order_id_tradewind_made(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    # The order's own id ("tw" + its id) names an order that is not a replacement: taken, two orders of the account
    # would share it (made ids take no entry in the unique index).
    old = await resting_limit(client, running, trader)
    body = {"price": "50000", "client_order_id": old["client_order_id"]}
    response = await client.patch(f"/api/trading/orders/{old['id']}", json=body, headers=trader)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "CLIENT_ORDER_ID_RESERVED")
    orders = (await client.get("/api/trading/orders", headers=trader)).json()
    assert [(o["id"], o["status"]) for o in orders] == [(old["id"], "OPEN")]


@pytest.mark.parametrize("whose", ["another order's", "its own"])
async def test_patch_with_a_client_order_id_that_names_another_order_is_409_and_replaces_nothing(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str], whose: str
) -> None:
    # Answering with the order that holds the id (as a repeated new order is answered) would tell the caller that
    # its change was made.
    old = await resting_limit(client, running, trader)
    bid, _ = best(running)
    other = (await place(client, trader, type="LIMIT", price=str(bid - 200), client_order_id="other-1")).json()
    other = await wait_for_status(client, trader, other["id"], "OPEN")
    taken = "other-1" if whose == "another order's" else "mine-1"
    if whose == "its own":  # the order was placed under a chosen id; its replacement cannot take it
        old = (await place(client, trader, type="LIMIT", price=str(bid - 300), client_order_id="mine-1")).json()
        old = await wait_for_status(client, trader, old["id"], "OPEN")
    before = sorted(
        (o["id"], o["status"], o["price"]) for o in (await client.get("/api/trading/orders", headers=trader)).json()
    )
    body = {"price": str(bid - 400), "client_order_id": taken}
    response = await client.patch(f"/api/trading/orders/{old['id']}", json=body, headers=trader)
    assert response.status_code == 409, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (
        "CLIENT_ORDER_ID_IN_USE",
        "client_order_id",
    )
    after = sorted(
        (o["id"], o["status"], o["price"]) for o in (await client.get("/api/trading/orders", headers=trader)).json()
    )
    assert after == before


async def test_patch_of_a_market_terminal_or_foreign_order_is_refused(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    market = (await place(client, trader)).json()
    await wait_for_status(client, trader, market["id"], "FILLED")
    response = await client.patch(f"/api/trading/orders/{market['id']}", json={"price": "50000"}, headers=trader)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "ORDER_NOT_REPLACEABLE")
    old = await resting_limit(client, running, trader)
    await client.delete(f"/api/trading/orders/{old['id']}", headers=trader)
    await wait_for_status(client, trader, str(old["id"]), "CANCELED")
    response = await client.patch(f"/api/trading/orders/{old['id']}", json={"price": "50000"}, headers=trader)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "ORDER_NOT_OPEN")
    mine = await resting_limit(client, running, trader)
    other = (await register(client))[1]
    response = await client.patch(f"/api/trading/orders/{mine['id']}", json={"price": "50000"}, headers=other)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")
    assert (await client.get(f"/api/trading/orders/{mine['id']}", headers=trader)).json()["status"] == "OPEN"


async def test_trailing_stop_over_http(client: httpx.AsyncClient, running: Services, trader: dict[str, str]) -> None:
    bought = (await place(client, trader, quantity="0.02")).json()  # something to sell
    await wait_for_status(client, trader, bought["id"], "FILLED")
    response = await place(client, trader, type="TRAILING_STOP_MARKET", side="SELL", trailing_delta_bps=150)
    assert response.status_code == 202, response.text
    order = response.json()
    assert (order["type"], order["trailing_delta_bps"], order["stop_price"]) == ("TRAILING_STOP_MARKET", 150, None)
    assert (await wait_for_status(client, trader, order["id"], "OPEN"))["trailing_delta_bps"] == 150
    for body, field in (
        ({"trailing_delta_bps": 9}, "trailing_delta_bps"),
        ({"trailing_delta_bps": 2001}, "trailing_delta_bps"),
        ({"trailing_delta_bps": 1.5}, "trailing_delta_bps"),
        ({}, "trailing_delta_bps"),
        ({"trailing_delta_bps": 100, "side": "BUY"}, "side"),
    ):
        fields = {"type": "TRAILING_STOP_MARKET", "side": "SELL", **body}
        refused = await place(client, trader, **fields)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"]["field"] == field


async def test_standalone_oco_over_http(client: httpx.AsyncClient, running: Services, trader: dict[str, str]) -> None:
    bought = (await place(client, trader, quantity="0.02")).json()  # the position the OCO protects
    await wait_for_status(client, trader, bought["id"], "FILLED")
    bid, ask = best(running)
    body = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.01",
        "price": str(ask + 500),
        "stop_price": str(bid - 500),
    }
    response = await client.post("/api/trading/oco", json=body, headers=trader)
    assert response.status_code == 202, response.text
    answer = response.json()
    take_profit, stop_loss = answer["orders"]
    assert {take_profit["oco_group"], stop_loss["oco_group"]} == {answer["oco_group"]}
    assert [(o["type"], o["status"]) for o in (take_profit, stop_loss)] == [
        ("LIMIT", "PENDING"),
        ("STOP_MARKET", "PENDING"),
    ]
    for leg in (take_profit, stop_loss):
        await wait_for_status(client, trader, leg["id"], "OPEN")
    leg_patch = await client.patch(f"/api/trading/orders/{take_profit['id']}", json={"price": "1"}, headers=trader)
    assert (leg_patch.status_code, leg_patch.json()["error"]["code"]) == (422, "ORDER_NOT_REPLACEABLE")
    await client.delete(f"/api/trading/orders/{stop_loss['id']}", headers=trader)  # one cancel ends both
    await wait_for_status(client, trader, take_profit["id"], "CANCELED")
    for fields, field in (
        ({"price": str(bid - 600)}, "price"),  # a SELL's take-profit below its stop
        ({"stop_limit_price": "1.001"}, "stop_limit_price"),
        ({"quantity": None}, "quantity"),
        ({"side": "HOLD"}, "side"),
        ({"symbol": "DOGEUSDT"}, "symbol"),
        ({"extra": 1}, "extra"),
    ):
        refused = await client.post("/api/trading/oco", json={**body, **fields}, headers=trader)
        assert refused.status_code == 422, (fields, refused.text)
        assert refused.json()["error"]["field"] == field
    other = (await register(client))[1]
    foreign = await client.post("/api/trading/oco", json={**body, "account_id": bought["account_id"]}, headers=other)
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "ACCOUNT_NOT_FOUND")


async def test_the_kill_switch_holds_for_oco_pairs_and_replacements(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    working = await resting_limit(client, running, trader)
    account_id = working["account_id"]
    halted = await client.put(
        f"/api/accounts/{account_id}/trading-state", json={"state": "REDUCE_ONLY"}, headers=trader
    )
    assert halted.status_code == 200, halted.text
    bid, ask = best(running)
    oco = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.01",
        "price": str(ask + 500),
        "stop_price": str(bid - 500),
    }
    refused = await client.post("/api/trading/oco", json=oco, headers=trader)  # nothing held: it would open a short
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "REDUCE_ONLY")
    patched = await client.patch(f"/api/trading/orders/{working['id']}", json={"price": str(bid - 50)}, headers=trader)
    assert (patched.status_code, patched.json()["error"]["code"]) == (409, "REDUCE_ONLY")  # a BUY grows a position
    orders = (await client.get("/api/trading/orders", headers=trader)).json()
    assert [(o["id"], o["status"]) for o in orders] == [(working["id"], "OPEN")]  # nothing stored or changed


async def test_an_oco_refused_for_the_open_order_limit_holds_no_slot(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    running.orders.open_orders = OpenOrderCounts(limit=1)  # room for one resting order, not a pair
    bid, ask = best(running)
    oco = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.01",
        "price": str(ask + 500),
        "stop_price": str(bid - 500),
    }
    refused = await client.post("/api/trading/oco", json=oco, headers=trader)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "TOO_MANY_OPEN_ORDERS")
    resting = await place(client, trader, type="LIMIT", price=str(bid - 1000), quantity="0.001")
    assert resting.status_code == 202, resting.text  # the refused pair left its one slot free
