"""POST /api/trading/positions/{symbol}/close: a MARKET SELL of the position, rounded down to the step."""

from __future__ import annotations

import httpx

from app.services import Services
from tests.factories import place, register, wait_for_status


async def close(
    client: httpx.AsyncClient, headers: dict[str, str], symbol: str = "BTCUSDT", **params: str
) -> httpx.Response:
    return await client.post(f"/api/trading/positions/{symbol}/close", params=params, headers=headers)


async def test_close_sells_the_whole_position_and_then_there_is_none(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, alice = await register(client)
    bought = (await place(client, alice, quantity="0.01")).json()
    await wait_for_status(client, alice, bought["id"], "FILLED")  # 0.00999 BTC held

    response = await close(client, alice, "btcusdt")
    assert response.status_code == 202, response.text
    order = response.json()
    assert (order["side"], order["type"], order["status"]) == ("SELL", "MARKET", "PENDING")
    assert order["quantity"] == "0.00999"
    await wait_for_status(client, alice, order["id"], "FILLED")
    [position] = (await client.get("/api/trading/positions", headers=alice)).json()
    assert position["quantity"] == "0"

    again = await close(client, alice)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "NO_POSITION"


async def test_a_position_below_the_minimum_order_value_is_a_clear_422(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, alice = await register(client)
    bought = (await place(client, alice, quantity="0.001")).json()
    await wait_for_status(client, alice, bought["id"], "FILLED")  # 0.000999 BTC
    sold = (await place(client, alice, side="SELL", quantity="0.00095")).json()
    await wait_for_status(client, alice, sold["id"], "FILLED")  # 0.000049 BTC left: ~4.4 USDT < 5 USDT

    response = await close(client, alice)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "POSITION_TOO_SMALL"
    assert "minimum order value" in error["message"]


async def test_unknown_symbol_and_foreign_account_are_404(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    [bob_account] = (await client.get("/api/accounts", headers=bob)).json()
    assert (await close(client, alice, "NOPEUSDT")).json()["error"]["code"] == "UNKNOWN_SYMBOL"
    foreign = await close(client, alice, account_id=bob_account["id"])
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "ACCOUNT_NOT_FOUND"


async def test_closing_is_allowed_when_reduce_only_and_refused_when_halted(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, alice = await register(client)
    [account] = (await client.get("/api/accounts", headers=alice)).json()
    bought = (await place(client, alice, quantity="0.01")).json()
    await wait_for_status(client, alice, bought["id"], "FILLED")
    url = f"/api/accounts/{account['id']}/trading-state"
    await client.put(url, json={"state": "HALTED"}, headers=alice)
    assert (await close(client, alice)).json()["error"]["code"] == "TRADING_HALTED"
    await client.put(url, json={"state": "REDUCE_ONLY"}, headers=alice)
    assert (await close(client, alice)).status_code == 202
