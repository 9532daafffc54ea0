"""The kill switch over HTTP: HALTED cancels and refuses, REDUCE_ONLY refuses what grows a position, the engine
re-checks orders queued before the change, and nothing of it crosses users."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from app.services import Services
from app.trading_state import TradingState, TradingStates
from storage.models import Order
from tests.factories import place, register, wait_for_status


def order_count(services: Services) -> int:
    return services.db.run_sync(lambda s: s.exec(select(func.count()).select_from(Order)).one())


async def paper_account(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    [account] = (await client.get("/api/accounts", headers=headers)).json()
    return account  # type: ignore[no-any-return]


async def set_state(client: httpx.AsyncClient, headers: dict[str, str], account_id: str, state: str) -> httpx.Response:
    return await client.put(f"/api/accounts/{account_id}/trading-state", json={"state": state}, headers=headers)


def resting_price(services: Services) -> str:
    depth = services.market.depth("BTCUSDT")
    assert depth is not None
    return str((depth.asks[0][0] * Decimal("0.9")).quantize(Decimal("0.01")))


async def test_halted_cancels_open_orders_refuses_new_ones_and_active_lifts_it(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, alice = await register(client)
    account = await paper_account(client, alice)
    assert account["trading_state"] == "ACTIVE"
    resting = (await place(client, alice, type="LIMIT", price=resting_price(running))).json()
    await wait_for_status(client, alice, resting["id"], "OPEN")

    response = await set_state(client, alice, account["id"], "halted")
    assert response.status_code == 200, response.text
    assert response.json() == {"account_id": account["id"], "state": "HALTED", "previous": "ACTIVE", "canceled": 1}
    await wait_for_status(client, alice, resting["id"], "CANCELED")
    assert (await paper_account(client, alice))["trading_state"] == "HALTED"

    stored = order_count(running)
    refused = await place(client, alice)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "TRADING_HALTED"
    assert order_count(running) == stored  # nothing stored

    assert (await set_state(client, alice, account["id"], "ACTIVE")).json()["previous"] == "HALTED"
    accepted = await place(client, alice)
    assert accepted.status_code == 202


async def test_reduce_only_refuses_buys_and_sells_beyond_the_position(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, alice = await register(client)
    account = await paper_account(client, alice)
    bought = (await place(client, alice, quantity="0.01")).json()
    await wait_for_status(client, alice, bought["id"], "FILLED")  # position 0.00999 (the fee is paid in BTC)
    assert (await set_state(client, alice, account["id"], "REDUCE_ONLY")).status_code == 200

    for fields in (
        {"side": "BUY"},
        {"side": "SELL", "quantity": "0.01"},
        {"side": "SELL", "quantity": None, "quote_quantity": "100"},
    ):
        response = await place(client, alice, **fields)
        assert response.status_code == 409, fields
        assert response.json()["error"]["code"] == "REDUCE_ONLY"
    other_symbol = await place(client, alice, symbol="ETHUSDT", side="SELL", quantity="0.01")
    assert other_symbol.json()["error"]["code"] == "REDUCE_ONLY"  # no ETH position: a SELL would open a short

    sold = await place(client, alice, side="SELL", quantity="0.009")
    assert sold.status_code == 202
    await wait_for_status(client, alice, sold.json()["id"], "FILLED")
    # The position shrank to 0.00099: the intake's memory followed the fill.
    again = await place(client, alice, side="SELL", quantity="0.001")
    assert again.json()["error"]["code"] == "REDUCE_ONLY"
    assert (await place(client, alice, side="SELL", quantity="0.00099")).status_code == 202


async def test_the_engine_rechecks_orders_queued_before_the_change(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Orders accepted while the engine is stopped are still queued when the state changes: the engine applies
    the new state when it reaches them (HALTED: CANCELED; REDUCE_ONLY: REJECTED)."""
    _, alice = await register(client)
    _, bob = await register(client)
    halted_order = (await place(client, alice)).json()
    reduce_order = (await place(client, bob)).json()
    await set_state(client, alice, (await paper_account(client, alice))["id"], "HALTED")
    await set_state(client, bob, (await paper_account(client, bob))["id"], "REDUCE_ONLY")
    await services.engine.start()
    try:
        halted = await wait_for_status(client, alice, halted_order["id"], "CANCELED", "REJECTED", "FILLED")
        reduced = await wait_for_status(client, bob, reduce_order["id"], "CANCELED", "REJECTED", "FILLED")
    finally:
        await services.engine.stop()
    assert halted["status"] == "CANCELED"
    assert reduced["status"] == "REJECTED"
    assert "reduce-only" in str(reduced["reject_reason"])


async def test_states_are_stored_and_loaded_at_start(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    account = await paper_account(client, alice)
    bought = (await place(client, alice, quantity="0.01")).json()
    await wait_for_status(client, alice, bought["id"], "FILLED")
    await set_state(client, alice, account["id"], "REDUCE_ONLY")

    fresh = TradingStates()
    await fresh.load(running.db)
    assert fresh.state(account["id"]) is TradingState.REDUCE_ONLY
    assert fresh.position(account["id"], "BTCUSDT") == Decimal("0.00999")


async def test_bad_state_is_422_and_another_users_account_is_404(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    account = await paper_account(client, alice)
    bad = await set_state(client, alice, account["id"], "PAUSED")
    assert bad.status_code == 422
    foreign = await set_state(client, bob, account["id"], "HALTED")
    assert foreign.status_code == 404
    assert (await paper_account(client, alice))["trading_state"] == "ACTIVE"
    assert (await place(client, alice)).status_code == 202


@pytest.mark.parametrize("state", ["HALTED", "REDUCE_ONLY"])
async def test_a_change_is_one_trading_state_event_and_repeating_it_adds_none(
    client: httpx.AsyncClient, running: Services, state: str
) -> None:
    user_id, alice = await register(client)
    account = await paper_account(client, alice)
    seen: list[Any] = []
    running.bus.subscribe_user(user_id, seen.append)
    await set_state(client, alice, account["id"], state)
    await set_state(client, alice, account["id"], state)
    [event] = [e for e in seen if e.type == "TRADING_STATE"]
    assert event.seq > 0
    assert event.data == {"account_id": account["id"], "state": state, "previous": "ACTIVE"}
    activity = (await client.get("/api/activity", headers=alice)).json()
    [change] = [record for record in activity if record["kind"] == "TRADING_STATE_CHANGED"]
    assert change["detail"] == {"account": account["label"], "state": state, "previous": "ACTIVE"}


async def test_a_paper_reset_under_reduce_only_leaves_nothing_to_sell(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, alice = await register(client)
    account = await paper_account(client, alice)
    bought = (await place(client, alice, quantity="0.01")).json()
    await wait_for_status(client, alice, bought["id"], "FILLED")
    await set_state(client, alice, account["id"], "REDUCE_ONLY")
    assert (await client.post(f"/api/accounts/{account['id']}/reset", headers=alice)).status_code == 200
    refused = await place(client, alice, side="SELL", quantity="0.005")
    assert refused.json()["error"]["code"] == "REDUCE_ONLY"  # the position went to zero with the reset
