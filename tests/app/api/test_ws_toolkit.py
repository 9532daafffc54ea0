"""TRADING_STATE and ALERT events on a real /ws socket, to their user only."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import websockets

from app.services import Services
from tests.app.api.test_ws_orders import next_of, token
from tests.factories import register, trade

pytestmark = pytest.mark.usefixtures("running")  # the execution engine runs behind the server


async def test_a_trading_state_change_reaches_the_owners_socket_only(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    _, bob = await register(http)
    [account] = (await http.get("/api/accounts", headers=alice)).json()
    async with (
        websockets.connect(f"ws://{server}/ws?token={token(alice)}") as alice_ws,
        websockets.connect(f"ws://{server}/ws?token={token(bob)}") as bob_ws,
    ):
        await next_of(alice_ws, "CONNECTED")
        await next_of(bob_ws, "CONNECTED")
        url = f"/api/accounts/{account['id']}/trading-state"
        assert (await http.put(url, json={"state": "REDUCE_ONLY"}, headers=alice)).status_code == 200
        message = await next_of(alice_ws, "TRADING_STATE")
        assert message["seq"] >= 1
        assert message["data"] == {"account_id": account["id"], "state": "REDUCE_ONLY", "previous": "ACTIVE"}
        await bob_ws.send(json.dumps({"type": "PING"}))
        assert (await next_of(bob_ws, "PONG", "TRADING_STATE"))["type"] == "PONG"


async def test_an_alert_that_fires_is_an_alert_event(
    server: str,
    http: httpx.AsyncClient,
    running: Services,
) -> None:
    _, alice = await register(http)
    await running.alerts.start()
    try:
        last = running.market.last_price("BTCUSDT")
        assert last is not None
        target = str((last * 2).quantize(Decimal("0.01")))  # BELOW a price twice the market: the next price fires it
        created = await http.post(
            "/api/alerts", json={"symbol": "BTCUSDT", "price": target, "direction": "BELOW"}, headers=alice
        )
        async with websockets.connect(f"ws://{server}/ws?token={token(alice)}") as ws:
            await next_of(ws, "CONNECTED")
            running.market.apply_trade(trade("BTCUSDT", str(last), "0.01"))  # type: ignore[arg-type]
            message = await next_of(ws, "ALERT")
        assert message["seq"] >= 1
        assert message["data"]["id"] == created.json()["id"]
        assert message["data"]["direction"] == "BELOW"
        assert Decimal(message["data"]["trigger_price"]) == last
        [stored] = (await http.get("/api/alerts", headers=alice)).json()
        assert stored["triggered_at"] == message["data"]["triggered_at"]
    finally:
        await running.alerts.stop()
