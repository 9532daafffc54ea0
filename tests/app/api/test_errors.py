"""app/api/errors.py: what the API answers to requests it cannot take as they are, before any route runs."""

from __future__ import annotations

import httpx
import pytest

from app.services import Services
from tests.factories import place, register


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/trading/orders/%00"),
        ("PATCH", "/api/trading/orders/ab%00cd"),
        ("DELETE", "/api/trading/orders/%00"),
        ("GET", "/api/trading/orders?account_id=%00"),
        ("GET", "/api/trading/fills?symbol=BTC%00USDT"),
        ("GET", "/api/trading/balances?account_id=%00"),
        ("GET", "/api/trading/positions?account_id=%00"),
        ("GET", "/api/trading/orders.csv?account_id=%00"),
        ("DELETE", "/api/trading/orders?symbol=%00"),
        ("PATCH", "/api/accounts/%00"),
        ("DELETE", "/api/alerts/%00"),
    ],
)
async def test_a_nul_character_in_an_api_url_is_422_and_changes_nothing(
    client: httpx.AsyncClient, running: Services, method: str, url: str
) -> None:
    # PostgreSQL's text cannot hold NUL: a lookup carrying one failed with a 500 there (SQLite answered 404).
    _, auth = await register(client)
    resting = (await place(client, auth, type="LIMIT", price="1000")).json()
    response = await client.request(method, url, headers=auth, json={"price": "999"} if method == "PATCH" else None)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    orders = (await client.get("/api/trading/orders", headers=auth)).json()
    assert [(o["id"], o["price"]) for o in orders] == [(resting["id"], "1000")]


async def test_a_percent_sign_that_is_not_a_nul_still_reaches_the_route(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, auth = await register(client)
    response = await client.get("/api/trading/orders/%2500", headers=auth)  # the id "%00", not a NUL
    assert (response.status_code, response.json()["error"]["code"]) == (404, "ORDER_NOT_FOUND")


@pytest.mark.parametrize(
    "content",
    [
        b'{"symbol": "\xff", "side": "BUY", "type": "MARKET", "quantity": "0.01"}',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nested past the parser's limit
    ],
)
async def test_a_body_that_cannot_be_read_as_json_is_400_malformed_json(
    client: httpx.AsyncClient, running: Services, content: bytes
) -> None:
    _, auth = await register(client)
    headers = {**auth, "Content-Type": "application/json"}
    response = await client.post("/api/trading/orders", content=content, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "MALFORMED_JSON")
    assert (await client.get("/api/trading/orders", headers=auth)).json() == []


async def test_an_error_in_a_tagged_union_body_names_the_field_not_the_tag(
    client: httpx.AsyncClient, running: Services
) -> None:
    # POST /api/accounts takes a paper account or an exchange key, told apart by `venue`: the error's location
    # starts with the tag ("paper").
    _, auth = await register(client)
    response = await client.post("/api/accounts", json={"venue": "paper", "label": "x" * 65}, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "label"
    response = await client.post("/api/accounts", json={"venue": "paper"}, headers=auth)
    assert (response.status_code, response.json()["error"]["field"]) == (422, "label")
