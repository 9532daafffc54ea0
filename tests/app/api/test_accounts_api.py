"""/api/accounts: adding Binance testnet keys (checked against the offline fake, stored sealed), deleting them."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlmodel import select

from app.crypto import DecryptionError
from app.ids import new_id, now_ms
from app.services import Services
from app.venues.binance_testnet import BinanceTestnetVenue
from storage.models import Account, Order
from storage.repositories import orders
from tests.factories import register
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance
from tests.fakes.binance.app_venues import point_services_at

SECOND_KEY = "B" * 60 + "0002"
SECOND_SECRET = "C" * 60 + "0002"


def body(**fields: Any) -> dict[str, Any]:
    return {"venue": "binance-testnet", "api_key": DOC_API_KEY, "api_secret": DOC_SECRET, **fields}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def stored_accounts(services: Services, user_id: str) -> list[Account]:
    return services.db.run_sync(
        lambda s: list(s.exec(select(Account).where(Account.user_id == user_id).order_by(Account.created_at)))
    )


@pytest.fixture
async def fake(services: Services) -> AsyncIterator[FakeBinance]:
    """The Binance fake, with the account service's venue factory pointed at it."""
    async with FakeBinance.start() as server:
        server.add_account(SECOND_KEY, SECOND_SECRET, {"USDT": "500"})
        point_services_at(services, server)  # the key check, and the account's worker that starts right after
        yield server


async def test_add_key_returns_hint_only_and_stores_it_sealed(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user_id, headers = await register(client)
    response = await client.post("/api/accounts", json=body(label="My testnet"), headers=headers)
    assert response.status_code == 201, response.text
    account = response.json()
    assert set(account) == {"id", "venue", "label", "created_at", "api_key_hint", "needs_new_key", "trading_state"}
    assert (account["venue"], account["label"], account["api_key_hint"]) == (
        "binance-testnet",
        "My testnet",
        "vmPU...Eh8A",
    )
    assert DOC_SECRET not in response.text and DOC_API_KEY not in response.text
    # The key was checked with a signed account call before anything was stored.
    assert next((r.method, r.path, r.api_key) for r in fake.requests) == ("GET", "/api/v3/account", DOC_API_KEY)

    listed = (await client.get("/api/accounts", headers=headers)).json()
    assert [a["venue"] for a in listed] == ["paper", "binance-testnet"]
    assert DOC_SECRET not in str(listed)

    row = next(a for a in stored_accounts(services, user_id) if a.id == account["id"])
    assert row.api_key_enc and row.api_secret_enc and row.key_id == services.keybox.key_id
    assert DOC_SECRET not in row.api_secret_enc and DOC_API_KEY not in row.api_key_enc
    opened = services.keybox.open(row.api_secret_enc, sealed_with=row.key_id, associated_data=f"{row.id}/api_secret")
    assert opened == DOC_SECRET
    with pytest.raises(DecryptionError):  # bound to its row
        services.keybox.open(row.api_secret_enc, sealed_with=row.key_id, associated_data=f"{new_id()}/api_secret")
    assert await services.accounts.credentials(row) == (DOC_API_KEY, DOC_SECRET)
    assert DOC_SECRET not in caplog.text


async def test_default_label_and_several_accounts_per_user(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance
) -> None:
    _, headers = await register(client)
    first = await client.post("/api/accounts", json=body(), headers=headers)
    second = await client.post(
        "/api/accounts", json=body(api_key=SECOND_KEY, api_secret=SECOND_SECRET, label="Bot"), headers=headers
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["label"] == "Binance testnet"
    listed = (await client.get("/api/accounts", headers=headers)).json()
    assert [(a["label"], a["api_key_hint"]) for a in listed] == [
        ("Paper", None),
        ("Binance testnet", "vmPU...Eh8A"),
        ("Bot", "BBBB...0002"),
    ]
    again = await client.post("/api/accounts", json=body(label="twice"), headers=headers)
    assert_error(again, 409, "ACCOUNT_EXISTS")


@pytest.mark.parametrize(
    ("api_key", "api_secret", "words"),
    [
        ("not-a-key", DOC_SECRET, "API-key format invalid."),
        ("Z" * 64, DOC_SECRET, "Invalid API-key, IP, or permissions for action."),
        (DOC_API_KEY, "wrong-secret", "Signature for this request is not valid."),
    ],
    ids=["format", "unknown-key", "wrong-secret"],
)
async def test_refused_key_is_422_with_the_exchanges_words_and_nothing_stored(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance, api_key: str, api_secret: str, words: str
) -> None:
    user_id, headers = await register(client)
    response = await client.post("/api/accounts", json=body(api_key=api_key, api_secret=api_secret), headers=headers)
    error = assert_error(response, 422, "EXCHANGE_REJECTED_KEY")
    assert error["message"] == words and error["field"] == "api_key"
    assert [a.venue for a in stored_accounts(services, user_id)] == ["paper"]


async def test_unreachable_exchange_is_422_and_throttling_is_429(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance
) -> None:
    user_id, headers = await register(client)
    fake.rate_limit_next(retry_after=3)
    throttled = await client.post("/api/accounts", json=body(), headers=headers)
    assert_error(throttled, 429, "EXCHANGE_THROTTLED")
    assert throttled.headers["Retry-After"] == "3"

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    services.accounts.make_venue = lambda k, s: BinanceTestnetVenue(
        k, s, rest_url=dead, stream_url=dead.replace("http", "ws"), ws_api_url=dead.replace("http", "ws")
    )
    response = await client.post("/api/accounts", json=body(), headers=headers)
    assert_error(response, 422, "EXCHANGE_UNREACHABLE")
    assert [a.venue for a in stored_accounts(services, user_id)] == ["paper"]


@pytest.mark.parametrize(
    "payload",
    [
        body(extra="x"),
        body(venue="paper"),
        {"venue": "binance-testnet", "api_key": DOC_API_KEY},
        body(api_key=""),
        body(api_key="abc def ghij"),
        body(api_secret="secret\u0000with-nul"),
        body(label="x" * 65),
        body(api_key=12345),
    ],
    ids=["extra-field", "paper-venue", "no-secret", "empty-key", "spaces", "control-char", "long-label", "number"],
)
async def test_bad_bodies_are_422_without_asking_the_exchange(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance, payload: dict[str, Any]
) -> None:
    user_id, headers = await register(client)
    response = await client.post("/api/accounts", json=payload, headers=headers)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert DOC_SECRET not in response.text
    assert fake.requests == []
    assert [a.venue for a in stored_accounts(services, user_id)] == ["paper"]


async def test_adding_is_refused_when_testnet_is_not_configured(client: httpx.AsyncClient, services: Services) -> None:
    _, headers = await register(client)
    services.accounts.make_venue = None
    assert_error(await client.post("/api/accounts", json=body(), headers=headers), 409, "VENUE_NOT_CONFIGURED")


async def test_delete_removes_the_account_and_its_keys(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance
) -> None:
    user_id, headers = await register(client)
    account_id = (await client.post("/api/accounts", json=body(), headers=headers)).json()["id"]
    response = await client.delete(f"/api/accounts/{account_id}", headers=headers)
    assert response.status_code == 204 and response.content == b""
    assert [a["venue"] for a in (await client.get("/api/accounts", headers=headers)).json()] == ["paper"]
    row = next(a for a in stored_accounts(services, user_id) if a.id == account_id)
    assert row.deleted_at is not None and row.api_key_enc is None and row.api_secret_enc is None
    assert_error(await client.delete(f"/api/accounts/{account_id}", headers=headers), 404, "ACCOUNT_NOT_FOUND")
    # Deleted keys can be added again.
    assert (await client.post("/api/accounts", json=body(), headers=headers)).status_code == 201


async def test_delete_is_refused_while_orders_are_open(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance
) -> None:
    user_id, headers = await register(client)
    account_id = (await client.post("/api/accounts", json=body(), headers=headers)).json()["id"]
    order = Order(
        id=new_id(),
        user_id=user_id,
        account_id=account_id,
        client_order_id="tw-open-1",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        time_in_force="GTC",
        quantity=Decimal("0.01"),
        price=Decimal("59000"),
        status="OPEN",
        created_at=now_ms(),
        updated_at=now_ms(),
    )
    services.db.run_sync(lambda s: orders.add(s, order))
    assert_error(await client.delete(f"/api/accounts/{account_id}", headers=headers), 409, "ACCOUNT_HAS_OPEN_ORDERS")
    assert len((await client.get("/api/accounts", headers=headers)).json()) == 2

    def fill(session: Any) -> None:
        row = orders.get(session, order.id)
        assert row is not None
        row.status = "FILLED"
        session.add(row)

    services.db.run_sync(fill)
    assert (await client.delete(f"/api/accounts/{account_id}", headers=headers)).status_code == 204


async def test_paper_account_and_other_users_accounts_cannot_be_deleted(
    client: httpx.AsyncClient, services: Services, fake: FakeBinance
) -> None:
    _, alice = await register(client)
    bob_id, bob = await register(client)
    paper_id = (await client.get("/api/accounts", headers=alice)).json()[0]["id"]
    assert_error(await client.delete(f"/api/accounts/{paper_id}", headers=alice), 409, "PAPER_ACCOUNT_REQUIRED")

    bobs = (await client.post("/api/accounts", json=body(), headers=bob)).json()["id"]
    assert_error(await client.delete(f"/api/accounts/{bobs}", headers=alice), 404, "ACCOUNT_NOT_FOUND")
    assert_error(await client.delete(f"/api/accounts/{new_id()}", headers=alice), 404, "ACCOUNT_NOT_FOUND")
    assert [a.id for a in stored_accounts(services, bob_id) if a.deleted_at is None][-1] == bobs
    assert (await client.delete(f"/api/accounts/{bobs}")).status_code == 401
