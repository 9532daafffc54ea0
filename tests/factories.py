"""Builders for test data, in one place."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import httpx
from ulid import ULID

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


def id_at(millis: int) -> str:
    """A fresh order id made at `millis`, as the app makes them (app/ids.py: an order's created_at is its id's
    millisecond), for rows a test stores at a chosen time."""
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + next(_counter).to_bytes(10, "big")))


async def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds. No timing assertion: the timeout only bounds a test that fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def unique_email(prefix: str = "trader") -> str:
    return f"{prefix}{next(_counter)}@example.com"


async def register(client: httpx.AsyncClient, email: str | None = None) -> tuple[str, dict[str, str]]:
    """Register a user over the API; returns (user id, auth headers)."""
    response = await client.post("/auth/register", json={"email": email or unique_email(), "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['token']}"}


async def place(client: httpx.AsyncClient, headers: dict[str, str], **fields: object) -> httpx.Response:
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", **fields}
    return await client.post("/api/trading/orders", json=body, headers=headers)


async def wait_for_status(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, *statuses: str, timeout: float = 10.0
) -> dict[str, object]:
    """Poll the order until it reaches one of `statuses` (the engine works in the background)."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        order = (await client.get(f"/api/trading/orders/{order_id}", headers=headers)).json()
        if order["status"] in statuses:
            return order  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"order stayed {order['status']}, expected {statuses}")
        await asyncio.sleep(0.01)


def trade(symbol: str, price: str, qty: str, side: str = "SELL", ts: int | None = None) -> object:
    """A public market trade (drives resting paper orders and stop triggers)."""
    from decimal import Decimal

    from app.ids import now_ms
    from app.market.models import Trade

    return Trade(symbol=symbol, price=Decimal(price), qty=Decimal(qty), side=side, ts=ts or now_ms())


def add_testnet_account(
    services: Any, user_id: str, api_key: str, secret: str, *, box: Any = None, legacy: bool = False
) -> str:
    """A Binance testnet account row with sealed keys, stored directly (no key check with the exchange): sealed
    the current way, or the legacy way (both fields bound to the account id alone). Returns its id."""
    from app import sealed_keys
    from app.ids import new_id, now_ms
    from storage.models import Account
    from storage.repositories import accounts as account_repo

    box = box or services.keybox
    account_id = new_id()
    if legacy:
        version = sealed_keys.LEGACY_SEAL_VERSION
        sealed = sealed_keys.SealedKeys(
            box.seal(api_key, account_id), box.seal(secret, account_id), box.key_id, version
        )
    else:
        sealed = sealed_keys.seal(box, account_id, api_key, secret)
    account = Account(
        id=account_id,
        user_id=user_id,
        venue="binance-testnet",
        label="Testnet",
        created_at=now_ms(),
        api_key_hint=f"{api_key[:4]}...{api_key[-4:]}",
        api_key_enc=sealed.api_key_enc,
        api_secret_enc=sealed.api_secret_enc,
        key_id=sealed.key_id,
        seal_version=sealed.seal_version,
    )
    services.db.run_sync(lambda session: account_repo.add(session, account))
    return account_id


def count_calls(monkeypatch: Any, owner: object, name: str) -> list[int]:
    """Wrap the async method `owner.name` (for the test) so each call appends to the returned list."""
    calls: list[int] = []
    original = getattr(owner, name)

    async def counted(*args: Any, **options: Any) -> Any:
        calls.append(1)
        return await original(*args, **options)

    monkeypatch.setattr(owner, name, counted)
    return calls
