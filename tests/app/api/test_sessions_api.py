"""Sessions and abuse limits over HTTP: login throttling under concurrency and per address, /auth/logout-all,
/auth/password, closed registration, the sign-up limit, and token checks without a database read."""

from __future__ import annotations

import asyncio

import httpx

from app.services import Services
from tests.app.api.conftest import ClientAt
from tests.app.api.test_auth_api import assert_error
from tests.factories import PASSWORD, register, unique_email


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def test_forty_parallel_wrong_passwords_get_at_most_five_401s(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    answers = await asyncio.gather(*(login(client, email, "wrong password") for _ in range(40)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) <= 5
    assert statuses.count(401) + statuses.count(429) == 40
    for answer in answers:
        if answer.status_code == 429:
            assert_error(answer, 429, "TOO_MANY_ATTEMPTS")
            assert int(answer.headers["Retry-After"]) > 0
    assert_error(await login(client, email), 429, "TOO_MANY_ATTEMPTS")  # even the right password, from here


async def test_a_locked_email_still_logs_in_from_another_address(client_at: ClientAt) -> None:
    email = unique_email()
    async with client_at("198.51.100.66") as stranger, client_at("192.0.2.10") as owner:
        await register(owner, email)
        for _ in range(5):
            assert_error(await login(stranger, email, "guess guess"), 401, "INVALID_CREDENTIALS")
        assert_error(await login(stranger, email), 429, "TOO_MANY_ATTEMPTS")
        assert (await login(owner, email)).status_code == 200


async def test_one_address_gets_twenty_failed_logins_across_emails(client_at: ClientAt) -> None:
    email = unique_email()
    async with client_at("203.0.113.5") as flood, client_at("203.0.113.6") as other:
        await register(other, email)
        for _ in range(20):
            assert_error(await login(flood, unique_email(), "wrong password"), 401)
        refused = await login(flood, email)  # a real user and the right password: the address is over its limit
        assert_error(refused, 429, "TOO_MANY_ATTEMPTS")
        assert int(refused.headers["Retry-After"]) > 0
        assert (await login(other, email)).status_code == 200


async def test_logout_all_ends_every_token_including_its_own(client: httpx.AsyncClient) -> None:
    email = unique_email()
    _, first = await register(client, email)
    second = {"Authorization": f"Bearer {(await login(client, email)).json()['token']}"}
    response = await client.post("/auth/logout-all", headers=second)
    assert response.status_code == 204 and response.content == b""
    for headers in (first, second):
        assert_error(await client.get("/api/accounts", headers=headers), 401, "INVALID_TOKEN")
    fresh = {"Authorization": f"Bearer {(await login(client, email)).json()['token']}"}
    assert (await client.get("/api/accounts", headers=fresh)).status_code == 200
    assert_error(await client.post("/auth/logout-all"), 401)


async def test_password_change_ends_other_tokens_and_answers_with_a_new_one(client: httpx.AsyncClient) -> None:
    email = unique_email()
    _, old = await register(client, email)
    body = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    response = await client.post("/auth/password", json=body, headers=old)
    assert response.status_code == 200, response.text
    new = {"Authorization": f"Bearer {response.json()['token']}"}
    assert response.json()["user"]["email"] == email
    assert_error(await client.get("/api/accounts", headers=old), 401, "INVALID_TOKEN")
    assert (await client.get("/api/accounts", headers=new)).status_code == 200
    assert_error(await login(client, email), 401, "INVALID_CREDENTIALS")
    assert (await login(client, email, "a brand new secret")).status_code == 200


async def test_password_change_refuses_a_wrong_current_password_and_is_throttled(client: httpx.AsyncClient) -> None:
    email = unique_email()
    _, headers = await register(client, email)
    wrong = {"current_password": "not my password", "new_password": "a brand new secret"}
    for _ in range(5):
        error = assert_error(await client.post("/auth/password", json=wrong, headers=headers), 422, "WRONG_PASSWORD")
        assert error["field"] == "current_password"
    right = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    throttled = await client.post("/auth/password", json=right, headers=headers)
    assert_error(throttled, 429, "TOO_MANY_ATTEMPTS")
    assert int(throttled.headers["Retry-After"]) > 0
    assert (await login(client, email)).status_code == 429  # the same count as the login's
    short = {"current_password": PASSWORD, "new_password": "short"}
    _, other = await register(client)
    assert assert_error(await client.post("/auth/password", json=short, headers=other), 422)["field"] == "new_password"
    assert_error(await client.post("/auth/password", json=right), 401)


async def test_closed_registration_is_403_and_creates_nothing(client: httpx.AsyncClient, services: Services) -> None:
    services.settings.registration = "closed"
    email = unique_email()
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert_error(response, 403, "REGISTRATION_CLOSED")
    assert_error(await login(client, email), 401, "INVALID_CREDENTIALS")


async def test_sign_ups_per_address_are_limited_with_retry_after(client_at: ClientAt, services: Services) -> None:
    assert services.settings.register_limit_per_hour == 20  # the default
    services.auth.registrations.window.limit = 3
    async with client_at("203.0.113.20") as busy, client_at("203.0.113.21") as other:
        for _ in range(3):
            await register(busy)
        refused = await busy.post("/auth/register", json={"email": unique_email(), "password": PASSWORD})
        assert_error(refused, 429, "TOO_MANY_REGISTRATIONS")
        assert 3500 < int(refused.headers["Retry-After"]) <= 3601
        await register(other)


async def test_authenticated_requests_do_not_read_the_user_from_the_database(
    client: httpx.AsyncClient, services: Services
) -> None:
    user_id, headers = await register(client)
    await client.get("/api/accounts", headers=headers)
    loads = services.auth.versions.loads
    for _ in range(20):
        assert (await client.get("/api/accounts", headers=headers)).status_code == 200
    assert services.auth.versions.loads == loads
    await services.auth.log_out_everywhere(user_id)
    assert_error(await client.get("/api/accounts", headers=headers), 401, "INVALID_TOKEN")
    assert services.auth.versions.loads == loads  # the change updated the cache; still no read
