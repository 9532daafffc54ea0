"""/api/accounts with venue "paper": several paper accounts per user, each with its own balances, orders and reset;
renaming, deleting, the per-user limit, and isolation between users."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from app.accounts import MAX_PAPER_ACCOUNTS
from app.services import Services
from tests.factories import place, register, wait_for_status


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


async def add_paper(client: httpx.AsyncClient, headers: dict[str, str], label: str, **fields: Any) -> httpx.Response:
    return await client.post("/api/accounts", json={"venue": "paper", "label": label, **fields}, headers=headers)


async def balances(client: httpx.AsyncClient, headers: dict[str, str], account_id: str) -> dict[str, dict[str, str]]:
    rows = (await client.get("/api/trading/balances", params={"account_id": account_id}, headers=headers)).json()
    return {row["asset"]: row for row in rows}


async def test_a_new_paper_account_has_its_label_and_starting_balances(
    client: httpx.AsyncClient, services: Services
) -> None:
    _, headers = await register(client)
    response = await add_paper(client, headers, "  Strategy   A ", balances={"USDT": "2500.5", "btc": 1})
    assert response.status_code == 201, response.text
    account = response.json()
    assert (account["venue"], account["label"], account["api_key_hint"]) == ("paper", "Strategy A", None)
    assert {k: v["free"] for k, v in (await balances(client, headers, account["id"])).items()} == {
        "BTC": "1",
        "USDT": "2500.5",
    }
    default = (await add_paper(client, headers, "Strategy B")).json()
    assert (await balances(client, headers, default["id"]))["USDT"]["free"] == "10000"  # PAPER_BALANCES
    listed = (await client.get("/api/accounts", headers=headers)).json()
    assert [(a["venue"], a["label"]) for a in listed] == [
        ("paper", "Paper"),
        ("paper", "Strategy A"),
        ("paper", "Strategy B"),
    ]


async def test_invalid_paper_accounts_are_refused_and_nothing_is_stored(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    assert_error(await add_paper(client, headers, ""), 422, "VALIDATION_ERROR")
    assert_error(await add_paper(client, headers, "   "), 422, "VALIDATION_ERROR")
    assert_error(await add_paper(client, headers, "x" * 65), 422, "VALIDATION_ERROR")
    assert_error(await add_paper(client, headers, "A", balances={"USDT": "-1"}), 422, "VALIDATION_ERROR")
    assert_error(await add_paper(client, headers, "A", api_key="k"), 422, "VALIDATION_ERROR")
    assert len((await client.get("/api/accounts", headers=headers)).json()) == 1


async def test_at_most_ten_paper_accounts_per_user(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    _, other = await register(client)
    for n in range(MAX_PAPER_ACCOUNTS - 1):  # the default paper account counts
        assert (await add_paper(client, headers, f"Strategy {n}")).status_code == 201
    assert_error(await add_paper(client, headers, "One too many"), 409, "TOO_MANY_PAPER_ACCOUNTS")
    assert len((await client.get("/api/accounts", headers=headers)).json()) == MAX_PAPER_ACCOUNTS
    assert (await add_paper(client, other, "Another user's")).status_code == 201  # the limit is per user


async def test_rename_and_delete_a_paper_account(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    account = (await add_paper(client, headers, "Strategy A")).json()
    renamed = await client.patch(f"/api/accounts/{account['id']}", json={"label": "Momentum"}, headers=headers)
    assert renamed.status_code == 200 and renamed.json()["label"] == "Momentum"
    assert_error(
        await client.patch(f"/api/accounts/{account['id']}", json={"label": " "}, headers=headers),
        422,
        "VALIDATION_ERROR",
    )
    assert (await client.delete(f"/api/accounts/{account['id']}", headers=headers)).status_code == 204
    assert [a["label"] for a in (await client.get("/api/accounts", headers=headers)).json()] == ["Paper"]
    assert_error(await place(client, headers, account_id=account["id"]), 404, "ACCOUNT_NOT_FOUND")
    assert_error(
        await client.get(f"/api/trading/balances?account_id={account['id']}", headers=headers), 404, "ACCOUNT_NOT_FOUND"
    )


async def test_the_default_paper_account_and_one_with_open_orders_stay(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, headers = await register(client)
    default_id = (await client.get("/api/accounts", headers=headers)).json()[0]["id"]
    assert_error(await client.delete(f"/api/accounts/{default_id}", headers=headers), 409, "PAPER_ACCOUNT_REQUIRED")
    account = (await add_paper(client, headers, "Strategy A")).json()
    resting = (await place(client, headers, type="LIMIT", price="1000", account_id=account["id"])).json()
    await wait_for_status(client, headers, resting["id"], "OPEN")
    assert_error(await client.delete(f"/api/accounts/{account['id']}", headers=headers), 409, "ACCOUNT_HAS_OPEN_ORDERS")
    await client.delete(f"/api/trading/orders/{resting['id']}", headers=headers)
    await wait_for_status(client, headers, resting["id"], "CANCELED")
    assert (await client.delete(f"/api/accounts/{account['id']}", headers=headers)).status_code == 204


async def test_orders_on_account_b_never_touch_account_a(client: httpx.AsyncClient, running: Services) -> None:
    _, headers = await register(client)
    a_id = (await client.get("/api/accounts", headers=headers)).json()[0]["id"]
    b_id = (await add_paper(client, headers, "Strategy B", balances={"USDT": "5000"})).json()["id"]
    before_a = await balances(client, headers, a_id)

    filled = (await place(client, headers, account_id=b_id)).json()
    await wait_for_status(client, headers, filled["id"], "FILLED")
    resting = (await place(client, headers, type="LIMIT", price="1000", account_id=b_id)).json()
    await wait_for_status(client, headers, resting["id"], "OPEN")

    after_b = await balances(client, headers, b_id)
    assert after_b["BTC"]["free"] == "0.00999" and after_b["USDT"]["locked"] == "10"
    assert Decimal(after_b["USDT"]["free"]) < Decimal("4990")
    assert await balances(client, headers, a_id) == before_a
    assert (await client.get("/api/trading/positions", params={"account_id": a_id}, headers=headers)).json() == []

    # A's reset leaves B's resting order and balances alone; B's own reset cancels it.
    assert (await client.post(f"/api/accounts/{a_id}/reset", headers=headers)).status_code == 200
    assert (await client.get(f"/api/trading/orders/{resting['id']}", headers=headers)).json()["status"] == "OPEN"
    assert await balances(client, headers, b_id) == after_b
    reset_b = await client.post(f"/api/accounts/{b_id}/reset", json={"balances": {"USDT": "42"}}, headers=headers)
    assert reset_b.status_code == 200 and reset_b.json()["label"] == "Strategy B"
    await wait_for_status(client, headers, resting["id"], "CANCELED")
    assert {k: v["free"] for k, v in (await balances(client, headers, b_id)).items()} == {"USDT": "42"}
    assert (await balances(client, headers, a_id))["USDT"]["free"] == "10000"


async def test_another_users_paper_accounts_are_not_found(client: httpx.AsyncClient) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    alices = (await add_paper(client, alice, "Alice's strategy")).json()["id"]
    assert [a["label"] for a in (await client.get("/api/accounts", headers=bob)).json()] == ["Paper"]
    for response in (
        await client.patch(f"/api/accounts/{alices}", json={"label": "mine"}, headers=bob),
        await client.delete(f"/api/accounts/{alices}", headers=bob),
        await client.post(f"/api/accounts/{alices}/reset", headers=bob),
        await client.get(f"/api/trading/balances?account_id={alices}", headers=bob),
        await place(client, bob, account_id=alices),
    ):
        assert_error(response, 404, "ACCOUNT_NOT_FOUND")
    assert [a["label"] for a in (await client.get("/api/accounts", headers=alice)).json()] == [
        "Paper",
        "Alice's strategy",
    ]


async def test_concurrent_creations_never_pass_the_limit(client: httpx.AsyncClient) -> None:
    _, headers = await register(client)
    for n in range(MAX_PAPER_ACCOUNTS - 3):
        assert (await add_paper(client, headers, f"Strategy {n}")).status_code == 201
    answers = await asyncio.gather(*(add_paper(client, headers, f"Racer {n}") for n in range(4)))
    assert sorted(r.status_code for r in answers) == [201, 201, 409, 409]
    assert len((await client.get("/api/accounts", headers=headers)).json()) == MAX_PAPER_ACCOUNTS
