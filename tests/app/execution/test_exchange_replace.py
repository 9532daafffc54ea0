"""Modify/replace on a Binance Spot Testnet account through the engine, against the fake exchange: ambiguous answers
to `order/cancelReplace` are resolved by asking for both orders, never by placing the replacement twice."""

from __future__ import annotations

from typing import Any

from app.replacements import ReplaceRequest
from app.services import Services
from tests.app.execution.conftest import API_KEY
from tests.app.execution.test_exchange import place, until
from tests.fakes.binance import FakeBinance

PATH = "/api/v3/order/cancelReplace"


async def replaced(services: Services, user: str, account: str) -> tuple[dict[str, Any], dict[str, Any]]:
    old = await place(services, user, account, type="LIMIT", price="50000")
    await until(services, user, old["id"], "OPEN")
    new = (await services.orders.replace(user, old["id"], ReplaceRequest(price="50100"))).order
    return old, new


async def test_a_timeout_after_binance_accepted_the_replace_is_resolved_without_a_second_request(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    fake.timeout_after_accept(1, path=PATH, delay=5.0)
    old, new = await replaced(services, user, account)
    assert (await until(services, user, new["id"], "OPEN", timeout=30))["price"] == "50100"
    assert (await until(services, user, old["id"], "REPLACED"))["status"] == "REPLACED"
    assert len([r for r in fake.requests if r.path == PATH]) == 1
    assert [o.client_order_id for o in fake.orders(API_KEY) if o.is_open] == [f"tw{new['id']}"]


async def test_a_server_error_before_accepting_sends_the_same_replace_again(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    fake.server_error_next(1, status=503, path=PATH)
    old, new = await replaced(services, user, account)
    await until(services, user, new["id"], "OPEN", timeout=30)
    await until(services, user, old["id"], "REPLACED")
    sent = [r.params for r in fake.requests if r.path == PATH]
    assert len(sent) == 2
    assert {(p["newClientOrderId"], p["cancelOrigClientOrderId"]) for p in sent} == {
        (f"tw{new['id']}", f"tw{old['id']}")
    }
    assert len([o for o in fake.orders(API_KEY) if o.client_order_id == f"tw{new['id']}"]) == 1
