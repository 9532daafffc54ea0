"""app/api/strict_body.py and app/api/schemas.py: request bodies refuse NUL characters in any text (naming the
field) and match enums in ASCII only; over HTTP, so the order lane and the FastAPI routes are both held to it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.services import Services
from tests.factories import register

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account_id": "\x00"}, "account_id"),
        ({"account_id": "01ABC\x00"}, "account_id"),
        ({"side": "BU\x00Y"}, "side"),
        ({"side": "ſell"}, "side"),  # "ſ".upper() is "S": Unicode case mapping would take it for SELL
        ({"type": "lımıt", "price": "1000"}, "type"),  # "ı".upper() is "I"
        ({"type": "LIMIT", "price": "1000", "time_in_force": "ıoc"}, "time_in_force"),
    ],
)
async def test_an_order_with_a_nul_or_a_non_ascii_enum_is_422_naming_the_field(
    client: httpx.AsyncClient, running: Services, change: dict[str, Any], field: str
) -> None:
    _, auth = await register(client)
    response = await client.post("/api/trading/orders", json={**ORDER, **change}, headers=auth)
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("VALIDATION_ERROR", field)
    assert (await client.get("/api/trading/orders", headers=auth)).json() == []


async def test_nul_characters_are_refused_in_every_body_and_change_nothing(
    client: httpx.AsyncClient, running: Services
) -> None:
    _, auth = await register(client)
    [account] = (await client.get("/api/accounts", headers=auth)).json()
    refused = [
        ("PATCH", f"/api/accounts/{account['id']}", {"label": "a\x00b"}, "label"),
        ("POST", "/api/accounts", {"venue": "paper", "label": "\x00"}, "label"),
        ("POST", f"/api/accounts/{account['id']}/reset", {"balances": {"US\x00DT": "100"}}, "balances"),
        (
            "POST",
            "/api/api-keys",
            {"label": "bot", "scopes": ["read"], "allowed_addresses": ["\x00"]},
            "allowed_addresses",
        ),
    ]
    for method, url, body, field in refused:
        response = await client.request(method, url, json=body, headers=auth)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["field"] == field, url
    assert (await client.get("/api/accounts", headers=auth)).json() == [account]
    assert (await client.get("/api/api-keys", headers=auth)).json() == []
