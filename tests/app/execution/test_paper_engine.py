"""The execution engine on the paper venue: order types, triggers, brackets, recovery, and the event log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from app.events import UserEvent
from app.orders import OrderRequest
from app.services import Services
from storage.models import Event
from tests.factories import PASSWORD, trade, unique_email


@pytest.fixture
async def running(services: Services) -> AsyncIterator[Services]:
    await services.engine.start()
    yield services
    await services.engine.stop()


async def new_user(services: Services) -> str:
    return (await services.auth.register(unique_email(), PASSWORD)).id


async def submit(services: Services, user_id: str, **fields: Any) -> dict[str, Any]:
    request = OrderRequest(**{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", **fields})
    order = (await services.orders.submit(user_id, request)).order
    await services.engine.drain()
    return await services.orders.get(user_id, order["id"])


def book(services: Services) -> tuple[Decimal, Decimal]:
    depth = services.market.depth("BTCUSDT")
    assert depth is not None
    return depth.bids[0][0], depth.asks[0][0]


async def print_trade(services: Services, price: Decimal, qty: str = "5") -> None:
    services.market.apply_trade(trade("BTCUSDT", str(price), qty))  # type: ignore[arg-type]
    await services.engine.drain()


async def test_ioc_and_fok_expire_what_they_cannot_fill(running: Services) -> None:
    user = await new_user(running)
    bid, _ = book(running)
    ioc = await submit(running, user, type="LIMIT", price=str(bid), time_in_force="IOC")
    assert ioc["status"] == "EXPIRED" and ioc["filled_quantity"] == "0"
    fok = await submit(running, user, type="LIMIT", price=str(bid), time_in_force="FOK")
    assert fok["status"] == "EXPIRED"
    balances = await running.portfolio.balances(user, None)
    assert [(b.asset, b.free, b.locked) for b in balances] == [("USDT", Decimal(10000), Decimal(0))]


async def test_stop_market_triggers_on_the_last_price(running: Services) -> None:
    user = await new_user(running)
    _, ask = book(running)
    stop = (ask * Decimal("1.01")).quantize(Decimal("0.01"))
    order = await submit(running, user, type="STOP_MARKET", stop_price=str(stop))
    assert order["status"] == "OPEN"
    await print_trade(running, stop - 1)
    assert (await running.orders.get(user, order["id"]))["status"] == "OPEN"
    await print_trade(running, stop)
    filled = await running.orders.get(user, order["id"])
    assert filled["status"] == "FILLED" and filled["fills"][0]["liquidity"] == "TAKER"


async def test_stop_that_would_trigger_immediately_is_rejected(running: Services) -> None:
    user = await new_user(running)
    _, ask = book(running)
    await print_trade(running, ask)
    order = await submit(running, user, type="STOP_MARKET", stop_price=str(ask - 100))
    assert order["status"] == "REJECTED"
    assert order["reject_reason"] == "Order would trigger immediately."


async def test_bracket_places_an_oco_exit_pair_and_one_leg_cancels_the_other(running: Services) -> None:
    user = await new_user(running)
    _, ask = book(running)
    take_profit = (ask * Decimal("1.05")).quantize(Decimal("0.01"))
    stop_loss = (ask * Decimal("0.95")).quantize(Decimal("0.01"))
    entry = await submit(
        running, user, take_profit_price=str(take_profit), stop_loss_price=str(stop_loss), quantity="0.01"
    )
    assert entry["status"] == "FILLED"
    legs = [o for o in await running.orders.list_orders(user, status="open") if o["parent_id"] == entry["id"]]
    assert sorted((leg["type"], leg["side"]) for leg in legs) == [("LIMIT", "SELL"), ("STOP_MARKET", "SELL")]
    assert all(leg["quantity"] == "0.00999" for leg in legs)  # what the entry delivered after its BTC fee
    base = {b.asset: b for b in await running.portfolio.balances(user, None)}["BTC"]
    assert base.locked == Decimal("0.00999") and base.free == 0  # one lock shared by the pair
    await print_trade(running, stop_loss - 1)
    statuses = {leg["type"]: (await running.orders.get(user, leg["id"]))["status"] for leg in legs}
    assert statuses == {"LIMIT": "CANCELED", "STOP_MARKET": "FILLED"}
    balances = {b.asset: b for b in await running.portfolio.balances(user, None)}
    assert balances["BTC"].free == 0 and balances["BTC"].locked == 0
    [position] = await running.portfolio.positions(user, None)
    assert position["quantity"] == "0" and Decimal(position["realized_pnl"]) < 0


async def test_canceling_one_bracket_leg_cancels_both(running: Services) -> None:
    user = await new_user(running)
    _, ask = book(running)
    entry = await submit(
        running,
        user,
        take_profit_price=str((ask * Decimal("1.05")).quantize(Decimal("0.01"))),
        stop_loss_price=str((ask * Decimal("0.95")).quantize(Decimal("0.01"))),
    )
    legs = [o for o in await running.orders.list_orders(user, status="open") if o["parent_id"] == entry["id"]]
    await running.orders.cancel(user, legs[0]["id"])
    await running.engine.drain()
    assert {(await running.orders.get(user, leg["id"]))["status"] for leg in legs} == {"CANCELED"}


async def test_partial_fill_when_less_trades_at_the_level(running: Services) -> None:
    user = await new_user(running)
    bid, _ = book(running)
    price = bid - 50
    order = await submit(running, user, type="LIMIT", price=str(price), quantity="0.01")
    await print_trade(running, price, qty="0.004")
    partial = await running.orders.get(user, order["id"])
    assert partial["status"] == "PARTIALLY_FILLED" and partial["filled_quantity"] == "0.004"
    usdt = {b.asset: b for b in await running.portfolio.balances(user, None)}["USDT"]
    assert usdt.locked == price * Decimal("0.006")
    await print_trade(running, price - 1, qty="1")
    assert (await running.orders.get(user, order["id"]))["status"] == "FILLED"


async def test_events_are_gap_free_per_user_and_match_the_log(running: Services) -> None:
    alice, bob = await new_user(running), await new_user(running)
    seen: dict[str, list[UserEvent]] = {alice: [], bob: []}
    running.bus.subscribe_user(alice, seen[alice].append)
    running.bus.subscribe_user(bob, seen[bob].append)
    bid, _ = book(running)
    await submit(running, alice)
    await submit(running, bob, type="LIMIT", price=str(bid - 10))
    await submit(running, alice, side="SELL", quantity="0.005")
    for user, events in seen.items():
        seqs = [e.seq for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        assert all(e.user_id == user for e in events)
        stored = running.db.run_sync(
            lambda s, user=user: list(s.exec(select(Event).where(Event.user_id == user).order_by(col(Event.seq))))
        )
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert [(e.type, json.loads(e.payload)) for e in stored][-len(events) :] == [(e.type, e.data) for e in events]
    alice_orders = {e.data["id"] for e in seen[alice] if e.type == "ORDER_UPDATE"}
    bob_orders = {e.data["id"] for e in seen[bob] if e.type == "ORDER_UPDATE"}
    assert alice_orders.isdisjoint(bob_orders)


async def test_recovery_requeues_pending_and_restores_resting_orders(services: Services) -> None:
    user = await new_user(services)
    bid, _ = book(services)
    # Stored while the engine is not running: exactly the state a crash leaves behind.
    pending = (await services.orders.submit(user, OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.01"))).order
    await services.engine.start()
    resting = await submit(services, user, type="LIMIT", price=str(bid - 10))
    assert (await services.orders.get(user, pending["id"]))["status"] == "FILLED"
    await services.engine.stop()
    # A fresh engine (as after a restart) rebuilds the paper book from the database.
    services.engine.paper.reset_book()
    await services.engine.start()
    assert services.engine.paper.open_order_ids() == {resting["id"]}
    await print_trade(services, bid - 20, qty="1")
    assert (await services.orders.get(user, resting["id"]))["status"] == "FILLED"
    filled_again = await services.orders.get(user, pending["id"])
    assert len(filled_again["fills"]) == 1  # never executed twice
    await services.engine.stop()


async def test_quote_quantity_market_buy_spends_at_most_the_amount(running: Services) -> None:
    user = await new_user(running)
    order = await submit(running, user, quantity=None, quote_quantity="250")
    assert order["status"] == "FILLED"
    spent = sum(Decimal(f["price"]) * Decimal(f["quantity"]) for f in order["fills"])
    assert Decimal(240) < spent <= Decimal(250)
