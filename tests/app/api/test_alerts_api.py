"""/api/alerts: create, list, delete; per-user isolation; validation."""

from __future__ import annotations

from decimal import Decimal

import httpx

from app.alerts import MAX_ACTIVE_ALERTS
from app.services import Services
from tests.factories import register


def last_price(services: Services) -> Decimal:
    price = services.market.last_price("BTCUSDT")
    assert price is not None
    return price


async def test_create_list_and_delete(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    running.bus.publish_price(running.market.ticker("BTCUSDT"))  # type: ignore[arg-type]
    above = str((last_price(running) * 2).quantize(Decimal("0.01")))
    below = str((last_price(running) / 2).quantize(Decimal("0.01")))

    first = await client.post("/api/alerts", json={"symbol": "btc/usdt", "price": above}, headers=alice)
    assert first.status_code == 201, first.text
    assert first.json()["direction"] == "ABOVE" and first.json()["symbol"] == "BTCUSDT"
    second = await client.post("/api/alerts", json={"symbol": "BTCUSDT", "price": below}, headers=alice)
    assert second.json()["direction"] == "BELOW"
    explicit = await client.post(
        "/api/alerts", json={"symbol": "BTCUSDT", "price": below, "direction": "above"}, headers=alice
    )
    assert explicit.json()["direction"] == "ABOVE"

    listed = (await client.get("/api/alerts", headers=alice)).json()
    assert [a["id"] for a in listed] == [explicit.json()["id"], second.json()["id"], first.json()["id"]]
    assert Decimal(listed[2]["price"]) == Decimal(above) and listed[2]["triggered_at"] is None

    assert (await client.delete(f"/api/alerts/{first.json()['id']}", headers=alice)).status_code == 204
    assert len((await client.get("/api/alerts", headers=alice)).json()) == 2


async def test_users_never_see_or_delete_each_others_alerts(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    created = await client.post(
        "/api/alerts", json={"symbol": "BTCUSDT", "price": "95000", "direction": "ABOVE"}, headers=alice
    )
    alert_id = created.json()["id"]
    assert (await client.get("/api/alerts", headers=bob)).json() == []
    deleted = await client.delete(f"/api/alerts/{alert_id}", headers=bob)
    assert deleted.status_code == 404
    assert deleted.json()["error"]["code"] == "ALERT_NOT_FOUND"
    assert [a["id"] for a in (await client.get("/api/alerts", headers=alice)).json()] == [alert_id]


async def test_bad_input_is_422_and_stores_nothing(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    cases = [
        ({"symbol": "NOPEUSDT", "price": "1", "direction": "ABOVE"}, "UNKNOWN_SYMBOL"),
        ({"symbol": "BTCUSDT", "price": "95000.001", "direction": "ABOVE"}, "VALIDATION_ERROR"),
        ({"symbol": "BTCUSDT", "price": "-1", "direction": "ABOVE"}, "VALIDATION_ERROR"),
        ({"symbol": "BTCUSDT", "price": "95000", "direction": "SIDEWAYS"}, "VALIDATION_ERROR"),
        ({"symbol": "BTCUSDT", "price": "95000", "extra": 1}, "VALIDATION_ERROR"),
    ]
    for body, code in cases:
        response = await client.post("/api/alerts", json=body, headers=alice)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == code, body
    assert (await client.get("/api/alerts", headers=alice)).json() == []


async def test_without_a_price_yet_the_direction_is_required(client: httpx.AsyncClient, services: Services) -> None:
    _, alice = await register(client)
    services.bus.latest_prices.pop("BTCUSDT", None)
    response = await client.post("/api/alerts", json={"symbol": "BTCUSDT", "price": "95000"}, headers=alice)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "NO_MARKET_DATA",
        "message": "no price for BTCUSDT yet: send direction ABOVE or BELOW",
        "field": "direction",
    }


async def test_the_per_user_limit_holds(client: httpx.AsyncClient, running: Services) -> None:
    _, alice = await register(client)
    body = {"symbol": "BTCUSDT", "price": "95000", "direction": "ABOVE"}
    for _ in range(MAX_ACTIVE_ALERTS):
        assert (await client.post("/api/alerts", json=body, headers=alice)).status_code == 201
    over = await client.post("/api/alerts", json=body, headers=alice)
    assert over.status_code == 422
    assert "at most" in over.json()["error"]["message"]
