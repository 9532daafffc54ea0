"""/auth/register, /auth/login, tokens, throttling, and bad input that must change nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func
from sqlmodel import select

from app.auth import password_context
from app.domain import fmt
from app.services import Services
from storage.models import Account, Balance, User
from tests.factories import PASSWORD, register, unique_email


def count_users(services: Services) -> int:
    return services.db.run_sync(lambda s: s.exec(select(func.count()).select_from(User)).one())


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["message"]
    if code:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


async def test_register_creates_user_token_and_funded_paper_account(
    client: httpx.AsyncClient, services: Services
) -> None:
    response = await client.post("/auth/register", json={"email": "Alice@Example.com", "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["email"] == "alice@example.com"
    accounts = await client.get("/api/accounts", headers={"Authorization": f"Bearer {body['token']}"})
    assert accounts.status_code == 200
    [paper] = accounts.json()
    assert paper["venue"] == "paper" and paper["api_key_hint"] is None
    balances = services.db.run_sync(lambda s: list(s.exec(select(Balance).where(Balance.account_id == paper["id"]))))
    assert [(b.asset, fmt(b.free), fmt(b.locked)) for b in balances] == [("USDT", "10000", "0")]


async def test_password_is_stored_only_as_an_argon2_hash(client: httpx.AsyncClient, services: Services) -> None:
    email = unique_email()
    await register(client, email)
    user = services.db.run_sync(lambda s: s.exec(select(User).where(User.email == email)).one())
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2")
    assert password_context.verify(PASSWORD, user.password_hash)


async def test_duplicate_email_is_409(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    response = await client.post("/auth/register", json={"email": email.upper(), "password": PASSWORD})
    assert_error(response, 409, "EMAIL_TAKEN")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "1234567"}, "password"),
        ({"email": "", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": ""}, "password"),
        ({"email": "a" * 300 + "@example.com", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "x" * 129}, "password"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": ["list"]}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "admin": True}, "admin"),
        ({"email": "a@example.com"}, "password"),
    ],
)
async def test_invalid_registration_is_422_and_writes_nothing(
    client: httpx.AsyncClient, services: Services, body: dict[str, Any], field: str
) -> None:
    before = count_users(services)
    error = assert_error(await client.post("/auth/register", json=body), 422)
    assert error["field"] == field
    assert count_users(services) == before


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "MALFORMED_JSON"),
        (b"", 400, "MALFORMED_JSON"),
        (b"[1, 2]", 422, None),
        (b"x" * 10_000_000, 413, "PAYLOAD_TOO_LARGE"),
    ],
)
async def test_malformed_bodies_get_4xx_in_the_error_shape(
    client: httpx.AsyncClient, services: Services, content: bytes, status: int, code: str | None
) -> None:
    before = count_users(services)
    response = await client.post("/auth/register", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, status, code)
    assert count_users(services) == before


async def test_login_returns_a_working_token(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    assert (await client.get("/api/accounts", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_answer(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    wrong = await client.post("/auth/login", json={"email": email, "password": "wrong password"})
    unknown = await client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD})
    assert wrong.json() == unknown.json()
    assert_error(wrong, 401, "INVALID_CREDENTIALS")


async def test_five_failures_throttle_the_email_with_retry_after(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    for _ in range(5):
        assert (await client.post("/auth/login", json={"email": email, "password": "nope-nope"})).status_code == 401
    throttled = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(throttled, 429, "TOO_MANY_ATTEMPTS")
    assert 0 < int(throttled.headers["Retry-After"]) <= 15 * 60
    other = unique_email()
    await register(client, other)
    assert (await client.post("/auth/login", json={"email": other, "password": PASSWORD})).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz"])
async def test_missing_or_malformed_tokens_are_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert_error(await client.get("/api/accounts", headers=headers), 401)


async def test_forged_and_expired_tokens_are_401(client: httpx.AsyncClient, services: Services) -> None:
    user_id, _ = await register(client)
    now = int(time.time())
    forged = jwt.encode(
        {"sub": user_id, "ver": 0, "iat": now, "exp": now + 600},
        "a-guessed-secret-that-is-long-enough-for-hs256",
        "HS256",
    )
    expired = jwt.encode(
        {"sub": user_id, "ver": 0, "iat": now - 7200, "exp": now - 60}, services.settings.jwt_secret, "HS256"
    )
    assert_error(await client.get("/api/accounts", headers={"Authorization": f"Bearer {forged}"}), 401)
    error = assert_error(await client.get("/api/accounts", headers={"Authorization": f"Bearer {expired}"}), 401)
    assert error["code"] == "TOKEN_EXPIRED"


async def test_log_out_everywhere_revokes_tokens(client: httpx.AsyncClient, services: Services) -> None:
    user_id, headers = await register(client)
    await services.auth.log_out_everywhere(user_id)
    assert_error(await client.get("/api/accounts", headers=headers), 401, "INVALID_TOKEN")


async def test_users_see_only_their_own_accounts(client: httpx.AsyncClient, services: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    alice_accounts = (await client.get("/api/accounts", headers=alice)).json()
    bob_accounts = (await client.get("/api/accounts", headers=bob)).json()
    assert {a["id"] for a in alice_accounts}.isdisjoint({b["id"] for b in bob_accounts})
    total = services.db.run_sync(lambda s: s.exec(select(func.count()).select_from(Account)).one())
    assert total == 2


async def test_health_and_json_404(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["db"] == "ok"
    assert_error(await client.get("/api/does-not-exist"), 404, "NOT_FOUND")
