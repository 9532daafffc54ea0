"""/api/trading: the order types beyond market/limit/stop over HTTP — post-only, modify/replace."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

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
