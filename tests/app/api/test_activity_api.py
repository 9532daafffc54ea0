"""/api/activity on the real routes: which account actions are recorded (with the client address), newest first with
paging, only the caller's own, and failed logins only for an existing email."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.activity import ActivityKind
from app.services import Services
from tests.app.api.conftest import ClientAt
from tests.factories import PASSWORD, register, unique_email
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance
from tests.fakes.binance.app_venues import point_services_at


@pytest.fixture
async def fake(services: Services) -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        point_services_at(services, server)
        yield server


async def activity(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/activity", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_logins_are_recorded_with_the_client_address_newest_first(
    client_at: ClientAt, services: Services
) -> None:
    email = unique_email()
    async with client_at("192.0.2.7") as home, client_at("198.51.100.3") as stranger:
        _, headers = await register(home, email)
        wrong = await stranger.post("/auth/login", json={"email": email, "password": "not the password"})
        assert wrong.status_code == 401
        unknown = await stranger.post("/auth/login", json={"email": unique_email(), "password": "whatever1"})
        assert unknown.status_code == 401
        await services.activity.drain()  # a failed login is recorded in the background (app/auth.py says why)
        assert (await home.post("/auth/login", json={"email": email, "password": PASSWORD})).status_code == 200
        records = await activity(home, headers)
    assert [(r["kind"], r["address"]) for r in records] == [
        ("LOGIN_SUCCEEDED", "192.0.2.7"),
        ("LOGIN_FAILED", "198.51.100.3"),
        ("REGISTERED", "192.0.2.7"),
    ]
    assert records[0]["ts"] >= records[1]["ts"] >= records[2]["ts"]


async def test_account_actions_are_recorded(client: httpx.AsyncClient, running: Services, fake: FakeBinance) -> None:
    email = unique_email()
    _, headers = await register(client, email)
    created = (
        await client.post("/api/api-keys", json={"label": "grid bot", "scopes": ["read"]}, headers=headers)
    ).json()
    assert (await client.delete(f"/api/api-keys/{created['id']}", headers=headers)).status_code == 204
    body = {"venue": "binance-testnet", "api_key": DOC_API_KEY, "api_secret": DOC_SECRET}
    account = (await client.post("/api/accounts", json=body, headers=headers)).json()
    assert (await client.delete(f"/api/accounts/{account['id']}", headers=headers)).status_code == 204
    paper = (await client.get("/api/accounts", headers=headers)).json()[0]
    reset = await client.post(f"/api/accounts/{paper['id']}/reset", json={"balances": {"USDT": "500"}}, headers=headers)
    assert reset.status_code == 200
    password = {"current_password": PASSWORD, "new_password": "a new password"}
    changed = await client.post("/auth/password", json=password, headers=headers)
    assert (await client.post("/auth/logout-all", headers=bearer(changed.json()["token"]))).status_code == 204
    login = await client.post("/auth/login", json={"email": email, "password": "a new password"})

    records = await activity(client, bearer(login.json()["token"]))
    assert [r["kind"] for r in records] == [
        "LOGIN_SUCCEEDED",
        "LOGGED_OUT_EVERYWHERE",
        "PASSWORD_CHANGED",
        "PAPER_RESET",
        "EXCHANGE_KEY_REMOVED",
        "EXCHANGE_KEY_ADDED",
        "API_KEY_REVOKED",
        "API_KEY_CREATED",
        "REGISTERED",
    ]
    by_kind = {r["kind"]: r["detail"] for r in records}
    assert by_kind["API_KEY_CREATED"] == {
        "key_id": created["id"],
        "label": "grid bot",
        "prefix": created["prefix"],
        "scopes": "read",
    }
    assert created["key"] not in str(records)
    assert by_kind["EXCHANGE_KEY_ADDED"]["key"] == account["api_key_hint"]
    assert by_kind["PAPER_RESET"]["balances"] == "500 USDT"


async def test_users_see_only_their_own_activity(client: httpx.AsyncClient) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    await client.post("/api/api-keys", json={"label": "alice's bot", "scopes": ["read"]}, headers=alice)
    assert [r["kind"] for r in await activity(client, bob)] == ["REGISTERED"]
    assert [r["kind"] for r in await activity(client, alice)] == ["API_KEY_CREATED", "REGISTERED"]


async def test_pages_continue_with_before_and_a_read_key_may_read(
    client: httpx.AsyncClient, services: Services
) -> None:
    user_id, headers = await register(client)
    for n in range(5):
        await services.activity.record(user_id, ActivityKind.PAPER_RESET, detail={"n": str(n)})
    key = (await client.post("/api/api-keys", json={"label": "reader", "scopes": ["read"]}, headers=headers)).json()
    first = await activity(client, bearer(key["key"]), limit=3)
    second = await activity(client, headers, limit=3, before=first[-1]["id"])
    assert [r["detail"].get("n") for r in first] == [None, "4", "3"]  # the key's creation is newest
    assert [r["detail"].get("n") for r in second] == ["2", "1", "0"]
    assert [r["kind"] for r in await activity(client, headers, limit=3, before=second[-1]["id"])] == ["REGISTERED"]
    response = await client.get("/api/activity", params={"limit": 0}, headers=headers)
    assert response.status_code == 422 and response.json()["error"]["field"] == "limit"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_cursor_beyond_any_id_is_422(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    response = await client.get("/api/activity?before=99999999999999999999", headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "before"
