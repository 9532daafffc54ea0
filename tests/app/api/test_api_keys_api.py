"""API keys over HTTP on the real routes: created once, listed without the key, scoped, address-bound, revoked at
once, limited and throttled, and never visible or revocable by another user."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlmodel import select

from app.api_keys import FAILED_USES, KEY_CREATIONS_PER_HOUR, MAX_KEYS_PER_USER, hash_key
from app.services import Services
from app.throttle import RequestRate, SlidingWindow
from storage.models import ApiKey
from tests.app.api.conftest import ClientAt
from tests.app.api.test_auth_api import assert_error
from tests.app.api.test_trading_api import best_ask
from tests.factories import PASSWORD, place, register


def resting_price(services: Services) -> str:
    """A limit buy price well below the market: the order rests."""
    return str((best_ask(services) * Decimal("0.9")).quantize(Decimal("0.01")))


async def create_key(
    client: httpx.AsyncClient, login: dict[str, str], scopes: list[str], **extra: object
) -> dict[str, str]:
    """Create a key with the login token; returns the key's auth headers (the created object under 'body')."""
    response = await client.post("/api/api-keys", json={"label": "bot", "scopes": scopes, **extra}, headers=login)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_a_key_is_shown_once_and_stored_only_as_its_hash(client: httpx.AsyncClient, services: Services) -> None:
    _, login = await register(client)
    created = await client.post("/api/api-keys", json={"label": "grid bot", "scopes": ["trade"]}, headers=login)
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith("tw_") and len(key) == 46 and key.startswith(body["prefix"])
    assert body["scopes"] == ["read", "trade"]  # trading includes reading
    rows = await services.db.read(lambda s: list(s.exec(select(ApiKey))))
    assert [row.key_hash for row in rows] == [hash_key(key)]
    assert all(key not in str(value) for row in rows for value in row.model_dump().values())
    listed = (await client.get("/api/api-keys", headers=login)).json()
    assert [(k["id"], k["label"], k["prefix"], k["last_used_at"]) for k in listed] == [
        (body["id"], "grid bot", body["prefix"], None)
    ]
    assert "key" not in listed[0]


async def test_a_key_authenticates_rest_and_records_its_last_use(client: httpx.AsyncClient) -> None:
    _, login = await register(client)
    bot = await create_key(client, login, ["read"])
    assert (await client.get("/api/trading/balances", headers=bot)).status_code == 200
    assert (await client.get("/api/api-keys", headers=login)).json()[0]["last_used_at"] is not None


async def test_a_read_key_gets_403_on_every_trading_call(client: httpx.AsyncClient, services: Services) -> None:
    _, login = await register(client)
    bot = await create_key(client, login, ["read"])
    order = (await place(client, login, type="LIMIT", price=resting_price(services), quantity="0.001")).json()
    calls = [
        await place(client, bot),
        await client.delete(f"/api/trading/orders/{order['id']}", headers=bot),
        await client.delete("/api/trading/orders", headers=bot),
        await client.post(f"/api/accounts/{order['account_id']}/reset", headers=bot),
        await client.post(
            "/api/accounts", json={"venue": "binance-testnet", "api_key": "k", "api_secret": "s"}, headers=bot
        ),
        await client.put(f"/api/accounts/{order['account_id']}/trading-state", json={"state": "HALTED"}, headers=bot),
        await client.post("/api/trading/positions/BTCUSDT/close", headers=bot),
        await client.patch(f"/api/trading/orders/{order['id']}", json={"price": "1"}, headers=bot),
        await client.post(
            "/api/trading/oco",
            json={"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.001", "price": "1", "stop_price": "1"},
            headers=bot,
        ),
    ]
    for response in calls:
        assert_error(response, 403, "SCOPE_REQUIRED")
    assert (await client.get(f"/api/trading/orders/{order['id']}", headers=bot)).json()["status"] == "PENDING"


async def test_a_trade_key_places_and_cancels_orders(running: Services, client: httpx.AsyncClient) -> None:
    _, login = await register(client)
    bot = await create_key(client, login, ["read", "trade"])
    placed = await place(client, bot, type="LIMIT", price=resting_price(running), quantity="0.001")
    assert placed.status_code == 202
    assert (await client.delete(f"/api/trading/orders/{placed.json()['id']}", headers=bot)).status_code == 202


async def test_keys_cannot_manage_keys_the_password_or_sessions(client: httpx.AsyncClient) -> None:
    _, login = await register(client)
    bot = await create_key(client, login, ["trade"])
    key_id = (await client.get("/api/api-keys", headers=login)).json()[0]["id"]
    password = {"current_password": PASSWORD, "new_password": "another secret"}
    for response in [
        await client.post("/api/api-keys", json={"label": "x", "scopes": ["read"]}, headers=bot),
        await client.get("/api/api-keys", headers=bot),
        await client.delete(f"/api/api-keys/{key_id}", headers=bot),
        await client.post("/auth/password", json=password, headers=bot),
        await client.post("/auth/logout-all", headers=bot),
        # a webhook outlives the key: a leaked key must not open a lasting channel out
        await client.post("/api/webhooks", json={"url": "https://example.com/hook", "events": ["fill"]}, headers=bot),
        await client.delete("/api/webhooks/01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=bot),
    ]:
        assert_error(response, 403, "LOGIN_REQUIRED")
    assert (await client.get("/api/trading/balances", headers=login)).status_code == 200  # login untouched


async def test_a_revoked_key_stops_at_once_and_cannot_be_revoked_twice(client: httpx.AsyncClient) -> None:
    _, login = await register(client)
    bot = await create_key(client, login, ["read"])
    key_id = (await client.get("/api/api-keys", headers=login)).json()[0]["id"]
    assert (await client.get("/api/trading/balances", headers=bot)).status_code == 200  # verified and cached
    assert (await client.delete(f"/api/api-keys/{key_id}", headers=login)).status_code == 204
    assert_error(await client.get("/api/trading/balances", headers=bot), 401, "INVALID_API_KEY")
    assert_error(await client.delete(f"/api/api-keys/{key_id}", headers=login), 404, "API_KEY_NOT_FOUND")
    assert (await client.get("/api/api-keys", headers=login)).json() == []


async def test_users_never_see_or_revoke_each_others_keys(client: httpx.AsyncClient, services: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    alice_bot = await create_key(client, alice, ["read"])
    alice_key = (await client.get("/api/api-keys", headers=alice)).json()[0]["id"]
    assert (await client.get("/api/api-keys", headers=bob)).json() == []
    assert_error(await client.delete(f"/api/api-keys/{alice_key}", headers=bob), 404, "API_KEY_NOT_FOUND")
    assert (await client.get("/api/trading/balances", headers=alice_bot)).status_code == 200
    alice_orders = (await client.get("/api/trading/orders", headers=alice_bot)).json()
    bob_order = (await place(client, bob, type="LIMIT", price=resting_price(services), quantity="0.001")).json()
    assert_error(await client.get(f"/api/trading/orders/{bob_order['id']}", headers=alice_bot), 404, "ORDER_NOT_FOUND")
    assert alice_orders == []


async def test_verified_keys_are_not_read_from_the_database_per_request(
    client: httpx.AsyncClient, services: Services
) -> None:
    _, login = await register(client)
    bot = await create_key(client, login, ["read"])
    await client.get("/api/trading/balances", headers=bot)
    loads = services.api_keys.cache.loads
    for _ in range(20):
        assert (await client.get("/api/trading/balances", headers=bot)).status_code == 200
    assert services.api_keys.cache.loads == loads


async def test_a_key_works_only_from_its_allowed_addresses(client_at: ClientAt) -> None:
    async with client_at("192.0.2.1") as home, client_at("198.51.100.9") as stranger:
        _, login = await register(home)
        bot = await create_key(home, login, ["read"], allowed_addresses=["192.0.2.0/24"])
        assert (await home.get("/api/trading/balances", headers=bot)).status_code == 200
        assert_error(await stranger.get("/api/trading/balances", headers=bot), 403, "ADDRESS_NOT_ALLOWED")
        listed = (await home.get("/api/api-keys", headers=login)).json()
        assert listed[0]["allowed_addresses"] == ["192.0.2.0/24"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "bot", "scopes": []}, "scopes"),
        ({"label": "bot", "scopes": ["admin"]}, "scopes"),
        ({"label": "", "scopes": ["read"]}, "label"),
        ({"label": "bot", "scopes": ["read"], "allowed_addresses": ["not an ip"]}, "allowed_addresses"),
    ],
)
async def test_bad_key_requests_are_422_and_create_nothing(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    _, login = await register(client)
    response = await client.post("/api/api-keys", json=body, headers=login)
    assert response.status_code == 422 and response.json()["error"]["field"] == field
    assert (await client.get("/api/api-keys", headers=login)).json() == []


async def test_a_user_holds_at_most_twenty_keys(client: httpx.AsyncClient, services: Services) -> None:
    user_id, login = await register(client)
    services.api_keys.creations = SlidingWindow(MAX_KEYS_PER_USER + 5, 3600.0)  # the limit, not the throttle
    for _ in range(MAX_KEYS_PER_USER):
        await services.api_keys.create(user_id, "bot", ["read"])
    response = await client.post("/api/api-keys", json={"label": "one more", "scopes": ["read"]}, headers=login)
    assert_error(response, 409, "TOO_MANY_API_KEYS")
    assert len((await client.get("/api/api-keys", headers=login)).json()) == MAX_KEYS_PER_USER


async def test_creating_keys_is_throttled_per_user(client: httpx.AsyncClient) -> None:
    _, login = await register(client)
    for _ in range(KEY_CREATIONS_PER_HOUR):
        await create_key(client, login, ["read"])
    response = await client.post("/api/api-keys", json={"label": "bot", "scopes": ["read"]}, headers=login)
    assert_error(response, 429, "TOO_MANY_KEY_CHANGES")
    assert int(response.headers["Retry-After"]) > 0


async def test_invalid_keys_are_throttled_per_address_but_a_verified_key_keeps_working(
    client_at: ClientAt,
) -> None:
    async with client_at("203.0.113.5") as client:
        _, login = await register(client)
        bot = await create_key(client, login, ["read"])
        assert (await client.get("/api/trading/balances", headers=bot)).status_code == 200
        wrong = {"Authorization": "Bearer tw_" + "x" * 43}
        for _ in range(FAILED_USES):
            assert_error(await client.get("/api/trading/balances", headers=wrong), 401, "INVALID_API_KEY")
        assert_error(await client.get("/api/trading/balances", headers=wrong), 429, "TOO_MANY_ATTEMPTS")
        assert (await client.get("/api/trading/balances", headers=bot)).status_code == 200


async def test_each_key_has_a_request_rate_and_a_login_token_does_not(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.api_keys.requests = RequestRate(1, 3)  # API_KEY_REQUESTS_PER_SECOND=1: bursts of 3
    _, login = await register(client)
    bot, other_bot = await create_key(client, login, ["read"]), await create_key(client, login, ["read"])
    for _ in range(3):
        assert (await client.get("/api/trading/balances", headers=bot)).status_code == 200
    refused = await client.get("/api/trading/balances", headers=bot)
    assert_error(refused, 429, "TOO_MANY_REQUESTS")
    assert refused.headers["Retry-After"] == "1"
    assert (await client.get("/api/trading/balances", headers=other_bot)).status_code == 200  # per key
    for _ in range(5):
        assert (await client.get("/api/trading/balances", headers=login)).status_code == 200
