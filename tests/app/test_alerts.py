"""AlertService: validation, listing/deleting by owner, firing exactly once when the price crosses."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from app import alerts as alerts_module
from app.alerts import ABOVE, BELOW, direction_for, reached
from app.errors import NotFound, ValidationFailed
from app.ids import now_ms
from app.market.models import Trade
from tests.factories import PASSWORD, unique_email


async def _user(services: Any) -> str:
    user = await services.auth.register(unique_email(), PASSWORD)
    return str(user.id)


def _trade(services: Any, price: str) -> None:
    services.market.apply_trade(Trade("BTCUSDT", Decimal(price), Decimal("0.1"), "BUY", now_ms()))


async def _settle(services: Any) -> None:
    for _ in range(50):  # the price publisher and the marking task run on the loop
        await asyncio.sleep(0.01)
        if not services.alerts._tasks:
            return


def test_direction_and_reach() -> None:
    assert direction_for(Decimal(10), Decimal(9)) == ABOVE
    assert direction_for(Decimal(8), Decimal(9)) == BELOW
    assert reached(ABOVE, Decimal(10), Decimal(10)) and not reached(ABOVE, Decimal(10), Decimal("9.99"))
    assert reached(BELOW, Decimal(10), Decimal(9)) and not reached(BELOW, Decimal(10), Decimal(11))


@pytest.mark.parametrize(
    ("symbol", "price", "direction", "message"),
    [
        ("NOPE", "1", "ABOVE", "unknown symbol NOPE"),
        ("BTCUSDT", "0", "ABOVE", "price must be greater than 0"),
        ("BTCUSDT", "100.001", "ABOVE", "price must be a multiple of the tick size 0.01"),
        ("BTCUSDT", "abc", "ABOVE", "price must be a decimal number"),
        ("BTCUSDT", "100", "SIDEWAYS", "direction must be one of ABOVE, BELOW"),
    ],
)
async def test_create_validates(services: Any, symbol: str, price: str, direction: str, message: str) -> None:
    user_id = await _user(services)
    with pytest.raises(ValidationFailed) as caught:
        await services.alerts.create(user_id, symbol, price, direction)
    assert caught.value.message == message


async def test_alerts_are_private_to_their_owner(services: Any) -> None:
    alice, bob = await _user(services), await _user(services)
    alert = await services.alerts.create(alice, "btc/usdt", "100000", "above")
    assert alert["symbol"] == "BTCUSDT" and alert["direction"] == ABOVE and alert["price"] == "100000"
    assert [a["id"] for a in await services.alerts.list(alice)] == [alert["id"]]
    assert await services.alerts.list(bob) == []
    with pytest.raises(NotFound):
        await services.alerts.delete(bob, alert["id"])
    await services.alerts.delete(alice, alert["id"])
    assert await services.alerts.list(alice) == []


async def test_an_alert_fires_once_when_the_price_crosses(services: Any) -> None:
    await services.alerts.start()
    user_id = await _user(services)
    fired: list[dict[str, Any]] = []
    unsubscribe = services.alerts.subscribe(user_id, fired.append)
    up = await services.alerts.create(user_id, "BTCUSDT", "100000", ABOVE)
    down = await services.alerts.create(user_id, "BTCUSDT", "80000", BELOW)
    _trade(services, "99999.99")
    await _settle(services)
    assert fired == []
    _trade(services, "100000.50")
    await _settle(services)
    _trade(services, "100100")
    await _settle(services)
    assert [(a["id"], a["trigger_price"]) for a in fired] == [(up["id"], "100000.5")]
    stored = {a["id"]: a for a in await services.alerts.list(user_id)}
    assert stored[up["id"]]["triggered_at"] is not None
    assert stored[down["id"]]["triggered_at"] is None
    unsubscribe()
    assert services.alerts.subscriber_count() == 0


async def test_racing_fires_notify_once(services: Any) -> None:
    user_id = await _user(services)
    fired: list[dict[str, Any]] = []
    services.alerts.subscribe(user_id, fired.append)
    created = await services.alerts.create(user_id, "BTCUSDT", "100000", ABOVE)
    alert = services.alerts._active["BTCUSDT"][created["id"]]
    await asyncio.gather(*(services.alerts._fire(alert, Decimal("100001")) for _ in range(5)))
    assert len(fired) == 1


async def test_only_the_newest_fired_alerts_are_kept(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts_module, "FIRED_KEPT", 2)
    await services.alerts.start()
    user_id, other = await _user(services), await _user(services)
    kept_by_other = await services.alerts.create(other, "BTCUSDT", "100000", ABOVE)
    created = []
    for _ in range(4):  # each fires on the next trade: fired alerts must not pile up without end
        created.append(await services.alerts.create(user_id, "BTCUSDT", "100000", ABOVE))
        _trade(services, "99000")
        _trade(services, "100001")
        await _settle(services)
    listed = await services.alerts.list(user_id)
    assert [a["id"] for a in listed] == [created[3]["id"], created[2]["id"]]
    assert all(a["triggered_at"] is not None for a in listed)
    assert [a["id"] for a in await services.alerts.list(other)] == [kept_by_other["id"]]  # not another user's
