"""/api/trading: intake validation (422, nothing stored), lifecycle through the engine, cancels, isolation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from ulid import ULID

from app.ids import new_id
from app.services import Services
from storage.models import Event, Fill, Order
from tests.factories import place, register, trade, wait_for_status


def count(services: Services, model: type[Any]) -> int:
    return services.db.run_sync(lambda s: s.exec(select(func.count()).select_from(model)).one())


def best_ask(services: Services) -> Decimal:
    depth = services.market.depth("BTCUSDT")
    assert depth is not None
    return depth.asks[0][0]


@pytest.fixture
async def trader(client: httpx.AsyncClient, running: Services) -> dict[str, str]:
    return (await register(client))[1]


async def test_market_order_is_pending_at_once_then_filled(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    response = await place(client, trader)
    assert response.status_code == 202
    order = response.json()
    assert order["status"] == "PENDING"
    assert order["client_order_id"].startswith("tw")
    filled = await wait_for_status(client, trader, order["id"], "FILLED")
    assert filled["filled_quantity"] == "0.01"
    assert filled["fee"] == "0.00001" and filled["fee_asset"] == "BTC"
    assert Decimal(str(filled["avg_fill_price"])) >= best_ask(running)
    [fill] = filled["fills"]  # type: ignore[misc]
    assert fill["liquidity"] == "TAKER"
    balances = {b["asset"]: b for b in (await client.get("/api/trading/balances", headers=trader)).json()}
    spent = Decimal(fill["price"]) * Decimal("0.01")
    assert Decimal(balances["USDT"]["free"]) == Decimal("10000") - spent
    assert balances["BTC"]["free"] == "0.00999"
    [position] = (await client.get("/api/trading/positions", headers=trader)).json()
    assert position["symbol"] == "BTCUSDT" and position["quantity"] == "0.00999"
    assert Decimal(position["avg_entry_price"]) * Decimal("0.00999") == pytest.approx(spent, abs=Decimal("1e-9"))


async def test_limit_order_rests_locks_funds_and_fills_when_traded_through(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    price = (best_ask(running) * Decimal("0.9")).quantize(Decimal("0.01"))
    order = (await place(client, trader, type="LIMIT", price=str(price), quantity="0.01")).json()
    await wait_for_status(client, trader, order["id"], "OPEN")
    balances = {b["asset"]: b for b in (await client.get("/api/trading/balances", headers=trader)).json()}
    assert Decimal(balances["USDT"]["locked"]) == price * Decimal("0.01")
    assert Decimal(balances["USDT"]["free"]) == Decimal(10000) - price * Decimal("0.01")
    running.market.apply_trade(trade("BTCUSDT", str(price - 1), "0.5"))  # type: ignore[arg-type]
    filled = await wait_for_status(client, trader, order["id"], "FILLED")
    assert filled["fills"][0]["liquidity"] == "MAKER"  # type: ignore[index]
    balances = {b["asset"]: b for b in (await client.get("/api/trading/balances", headers=trader)).json()}
    assert balances["USDT"]["locked"] == "0"
    assert Decimal(balances["USDT"]["free"]) == Decimal(10000) - price * Decimal("0.01")


async def test_cancel_releases_the_lock_and_terminal_cancel_is_409(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    price = (best_ask(running) * Decimal("0.9")).quantize(Decimal("0.01"))
    order = (await place(client, trader, type="LIMIT", price=str(price))).json()
    await wait_for_status(client, trader, order["id"], "OPEN")
    response = await client.delete(f"/api/trading/orders/{order['id']}", headers=trader)
    assert response.status_code == 202
    canceled = await wait_for_status(client, trader, order["id"], "CANCELED")
    assert canceled["reject_reason"] == "canceled by the user"
    balances = {b["asset"]: b for b in (await client.get("/api/trading/balances", headers=trader)).json()}
    assert balances["USDT"] == {"asset": "USDT", "free": "10000", "locked": "0"}
    again = await client.delete(f"/api/trading/orders/{order['id']}", headers=trader)
    assert again.status_code == 409 and again.json()["error"]["code"] == "ORDER_NOT_OPEN"


async def test_cancel_all(client: httpx.AsyncClient, running: Services, trader: dict[str, str]) -> None:
    price = (best_ask(running) * Decimal("0.8")).quantize(Decimal("0.01"))
    ids = [(await place(client, trader, type="LIMIT", price=str(price))).json()["id"] for _ in range(3)]
    for order_id in ids:
        await wait_for_status(client, trader, order_id, "OPEN")
    response = await client.delete("/api/trading/orders", headers=trader)
    assert response.status_code == 202 and response.json() == {"canceled": 3}
    for order_id in ids:
        await wait_for_status(client, trader, order_id, "CANCELED")
    assert (await client.get("/api/trading/orders?status=open", headers=trader)).json() == []


async def test_insufficient_funds_is_rejected_with_a_reason(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    order = (await place(client, trader, quantity="1")).json()  # ~90,000 USDT with 10,000 available
    rejected = await wait_for_status(client, trader, order["id"], "REJECTED")
    assert "Insufficient balance" in str(rejected["reject_reason"])
    sell = (await place(client, trader, side="SELL", quantity="0.01")).json()
    assert "BTC" in str((await wait_for_status(client, trader, sell["id"], "REJECTED"))["reject_reason"])


async def test_duplicate_client_order_id_returns_the_original(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    first = await place(client, trader, client_order_id="my-order-1")
    second = await place(client, trader, client_order_id="my-order-1", quantity="0.02")
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["quantity"] == "0.01"
    assert len((await client.get("/api/trading/orders", headers=trader)).json()) == 1


async def test_a_client_order_id_tradewind_made_finds_its_order(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    # An order sent without a client order id gets "tw" + its id: sent back, it is found (by primary key: that id
    # takes no entry in the unique index, storage/models.py) and nothing new is stored.
    first = (await place(client, trader)).json()
    again = await place(client, trader, client_order_id=first["client_order_id"], quantity="0.02")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.json()["quantity"] == "0.01"
    _, stranger = await register(client)  # in another user's account it finds nothing, and cannot be chosen
    refused = await place(client, stranger, client_order_id=first["client_order_id"])
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "CLIENT_ORDER_ID_RESERVED"
    assert len((await client.get("/api/trading/orders", headers=trader)).json()) == 1


async def test_a_client_order_id_of_the_made_shape_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    # Allowed, it could give two orders of an account one client order id: "tw" + a later order's id (ids of one
    # millisecond are consecutive) would not collide in the partial unique index with the id made for that order.
    orders_before, events_before = count(running, Order), count(running, Event)
    response = await place(client, trader, client_order_id="tw" + new_id())
    assert response.status_code == 422, response.text
    assert response.json()["error"] | {"message": ""} == {
        "code": "CLIENT_ORDER_ID_RESERVED",
        "field": "client_order_id",
        "message": "",
    }
    assert (count(running, Order), count(running, Event)) == (orders_before, events_before)
    for near_miss in ("tw" + new_id().lower(), "tw" + new_id()[:-1], "TW" + new_id(), "tw-" + new_id()[:25]):
        assert (await place(client, trader, client_order_id=near_miss)).status_code == 202


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"symbol": "DOGEUSDT"}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"side": "HOLD"}, "side"),
        ({"type": "ICEBERG"}, "type"),
        ({"type": "LIMIT"}, "price"),
        ({"price": "90000"}, "price"),
        ({"type": "STOP_MARKET"}, "stop_price"),
        ({"stop_price": "90000"}, "stop_price"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "0.000001"}, "quantity"),  # off the 0.00001 step grid
        ({"quantity": "0.00001"}, "quantity"),  # below min notional (5 USDT)
        ({"quantity": "1e30"}, "quantity"),
        ({"quantity": "1e-30"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"quantity": "Infinity"}, "quantity"),
        ({"quantity": "abc"}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"type": "LIMIT", "price": "90000.001"}, "price"),  # off the 0.01 tick grid
        ({"type": "LIMIT", "price": "-5"}, "price"),
        ({"quote_quantity": "100"}, "quote_quantity"),  # together with quantity
        ({"type": "LIMIT", "price": "90000", "quantity": None, "quote_quantity": "100"}, "quote_quantity"),
        ({"quantity": None, "quote_quantity": "1"}, "quote_quantity"),  # below min notional
        ({"time_in_force": "GTC"}, "time_in_force"),  # market orders take no TIF
        ({"type": "LIMIT", "price": "90000", "time_in_force": "GTD"}, "time_in_force"),
        ({"type": "LIMIT_MAKER"}, "price"),
        ({"type": "LIMIT_MAKER", "price": "50000", "time_in_force": "GTC"}, "time_in_force"),  # post-only: none
        ({"take_profit_price": "100000"}, "stop_loss_price"),
        ({"take_profit_price": "80000", "stop_loss_price": "70000"}, "take_profit_price"),
        ({"take_profit_price": "100000", "stop_loss_price": "95000"}, "stop_loss_price"),
        ({"client_order_id": "has spaces"}, "client_order_id"),
        ({"client_order_id": "x" * 33}, "client_order_id"),
        ({"unknown": 1}, "unknown"),
        ({"symbol": 5}, "symbol"),
        # JSON of the wrong kind where intake looks up a stored enum: a 422 in both forms (app/native.py)
        ({"side": ["BUY"]}, "side"),
        ({"type": {"MARKET": 1}}, "type"),
        ({"type": "LIMIT", "price": "90000", "time_in_force": 1}, "time_in_force"),
    ],
)
async def test_invalid_orders_are_422_naming_the_field_and_store_nothing(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str], fields: dict[str, Any], field: str
) -> None:
    orders_before, events_before = count(running, Order), count(running, Event)
    response = await place(client, trader, **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["message"]
    assert (count(running, Order), count(running, Event)) == (orders_before, events_before)


async def test_numbers_are_accepted_as_json_numbers(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    response = await place(client, trader, quantity=0.01)
    assert response.status_code == 202
    assert response.json()["quantity"] == "0.01"


async def test_symbol_with_slash_is_normalised(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    response = await place(client, trader, symbol="btc/usdt")
    assert response.status_code == 202 and response.json()["symbol"] == "BTCUSDT"


async def test_users_never_see_or_touch_each_others_orders(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    order = (await place(client, alice)).json()
    await wait_for_status(client, alice, order["id"], "FILLED")
    assert (await client.get(f"/api/trading/orders/{order['id']}", headers=bob)).status_code == 404
    assert (await client.delete(f"/api/trading/orders/{order['id']}", headers=bob)).status_code == 404
    assert (await client.get("/api/trading/orders", headers=bob)).json() == []
    assert (await client.get("/api/trading/fills", headers=bob)).json() == []
    assert (await client.get("/api/trading/positions", headers=bob)).json() == []
    alice_account = order["account_id"]
    for path in ("/api/trading/balances", "/api/trading/positions", "/api/trading/orders", "/api/trading/fills"):
        response = await client.get(f"{path}?account_id={alice_account}", headers=bob)
        assert response.status_code == 404, path
    foreign = await place(client, bob, account_id=alice_account)
    assert foreign.status_code == 404
    assert (await client.post(f"/api/accounts/{alice_account}/reset", headers=bob)).status_code == 404


async def test_order_list_filters_and_pages_newest_first(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    price = (best_ask(running) * Decimal("0.8")).quantize(Decimal("0.01"))
    ids = [(await place(client, trader, type="LIMIT", price=str(price))).json()["id"] for _ in range(3)]
    market = (await place(client, trader)).json()["id"]
    await wait_for_status(client, trader, market, "FILLED")
    listed = [o["id"] for o in (await client.get("/api/trading/orders", headers=trader)).json()]
    assert listed == [market, *reversed(ids)]
    page = (await client.get(f"/api/trading/orders?limit=2&before={listed[1]}", headers=trader)).json()
    assert [o["id"] for o in page] == listed[2:4]
    closed = (await client.get("/api/trading/orders?status=closed", headers=trader)).json()
    assert [o["id"] for o in closed] == [market]
    assert (await client.get("/api/trading/orders?status=bogus", headers=trader)).status_code == 422
    assert (await client.get("/api/trading/orders?limit=0", headers=trader)).status_code == 422
    assert (await client.get("/api/trading/orders?symbol=ETHUSDT", headers=trader)).json() == []


async def test_orders_of_every_account_are_listed_newest_first(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    # Orders are indexed by account; without account_id the list merges every account of the user.
    second = await client.post("/api/accounts", headers=trader, json={"venue": "paper", "label": "Second"})
    assert second.status_code == 201, second.text
    price = str((best_ask(running) * Decimal("0.8")).quantize(Decimal("0.01")))
    ids = []
    for account in (None, second.json()["id"], None, second.json()["id"]):
        extra = {"account_id": account} if account else {}
        ids.append((await place(client, trader, type="LIMIT", price=price, **extra)).json()["id"])
    _, stranger = await register(client)
    await place(client, stranger, type="LIMIT", price=price)
    newest_first = list(reversed(ids))
    listed = (await client.get("/api/trading/orders?status=open", headers=trader)).json()
    assert [o["id"] for o in listed] == newest_first
    page = (await client.get(f"/api/trading/orders?status=open&limit=2&before={ids[2]}", headers=trader)).json()
    assert [o["id"] for o in page] == newest_first[2:4]
    every = (await client.get("/api/trading/orders?limit=3", headers=trader)).json()
    assert [o["id"] for o in every] == newest_first[:3]
    filled = []
    for account in (second.json()["id"], None, second.json()["id"]):
        extra = {"account_id": account} if account else {}
        filled.append((await place(client, trader, **extra)).json())
        await wait_for_status(client, trader, filled[-1]["id"], "FILLED")
    await wait_for_status(client, stranger, (await place(client, stranger)).json()["id"], "FILLED")
    closed = (await client.get("/api/trading/orders?status=closed&limit=2", headers=trader)).json()
    assert [o["id"] for o in closed] == [filled[2]["id"], filled[1]["id"]]
    older = (await client.get(f"/api/trading/orders?status=closed&before={filled[1]['id']}", headers=trader)).json()
    assert [o["id"] for o in older] == [filled[0]["id"]]
    # An order's created_at is its id's millisecond: ordering by id is ordering by time (statements rely on it).
    assert all(o["created_at"] == ULID.from_str(o["id"]).milliseconds for o in every + closed)


async def test_a_deleted_accounts_orders_stay_in_the_users_history(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    second = (await client.post("/api/accounts", headers=trader, json={"venue": "paper", "label": "Gone"})).json()
    await client.post("/api/accounts", headers=trader, json={"venue": "paper", "label": "Never traded"})
    order = (await place(client, trader, account_id=second["id"])).json()
    await wait_for_status(client, trader, order["id"], "FILLED")
    assert (await client.delete(f"/api/accounts/{second['id']}", headers=trader)).status_code == 204
    listed = (await client.get("/api/trading/orders", headers=trader)).json()
    assert [o["id"] for o in listed] == [order["id"]]
    assert (await client.get("/api/trading/orders?status=open", headers=trader)).json() == []


async def test_fills_are_listed_newest_first_by_their_time(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    order = (await place(client, trader)).json()
    await wait_for_status(client, trader, order["id"], "FILLED")
    [fill] = (await client.get("/api/trading/fills", headers=trader)).json()
    # A fill recorded after it (a newer id) but that happened before it at the venue (an exchange fill found late).
    stored = running.db.run_sync(lambda s: s.get(Order, order["id"]))
    assert stored is not None
    late = Fill(
        id=new_id(), order_id=order["id"], user_id=stored.user_id, account_id=fill["account_id"], symbol="BTCUSDT",
        side="BUY", price=Decimal("1"), quantity=Decimal("0.001"), fee=Decimal(0), fee_asset="BTC",
        liquidity="TAKER", venue_trade_id="t-late", ts=fill["ts"] - 60_000,
    )  # fmt: skip
    running.db.run_sync(lambda s: s.add(late))
    listed = (await client.get("/api/trading/fills", headers=trader)).json()
    assert [f["id"] for f in listed] == [fill["id"], late.id]


async def test_paper_reset(client: httpx.AsyncClient, running: Services, trader: dict[str, str]) -> None:
    price = (best_ask(running) * Decimal("0.8")).quantize(Decimal("0.01"))
    resting = (await place(client, trader, type="LIMIT", price=str(price))).json()
    filled = (await place(client, trader)).json()
    await wait_for_status(client, trader, filled["id"], "FILLED")
    await wait_for_status(client, trader, resting["id"], "OPEN")
    account_id = filled["account_id"]
    response = await client.post(
        f"/api/accounts/{account_id}/reset", json={"balances": {"USDT": "500", "ETH": 2}}, headers=trader
    )
    assert response.status_code == 200 and response.json()["id"] == account_id
    assert (await client.get(f"/api/trading/orders/{resting['id']}", headers=trader)).json()["status"] == "CANCELED"
    balances = (await client.get("/api/trading/balances", headers=trader)).json()
    assert balances == [
        {"asset": "ETH", "free": "2", "locked": "0"},
        {"asset": "USDT", "free": "500", "locked": "0"},
    ]
    assert (await client.get("/api/trading/positions", headers=trader)).json() == []
    assert len((await client.get("/api/trading/fills", headers=trader)).json()) == 1  # history stays
    bad = await client.post(f"/api/accounts/{account_id}/reset", json={"balances": {"USDT": "-1"}}, headers=trader)
    assert bad.status_code == 422


async def test_paper_reset_balances_are_capped(
    client: httpx.AsyncClient, running: Services, trader: dict[str, str]
) -> None:
    account_id = (await client.get("/api/accounts", headers=trader)).json()[0]["id"]
    before = (await client.get("/api/trading/balances", headers=trader)).json()
    for amount in ("10000000000", 1e10, "99999999999999999999"):
        response = await client.post(
            f"/api/accounts/{account_id}/reset", json={"balances": {"USDT": amount}}, headers=trader
        )
        assert response.status_code == 422, response.text
    assert (await client.get("/api/trading/balances", headers=trader)).json() == before
    response = await client.post(
        f"/api/accounts/{account_id}/reset", json={"balances": {"USDT": "9999999999.5"}}, headers=trader
    )
    assert response.status_code == 200
