"""Builders for test data, in one place."""

from __future__ import annotations

import itertools

import httpx

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


def unique_email(prefix: str = "trader") -> str:
    return f"{prefix}{next(_counter)}@example.com"


async def register(client: httpx.AsyncClient, email: str | None = None) -> tuple[str, dict[str, str]]:
    """Register a user over the API; returns (user id, auth headers)."""
    response = await client.post("/auth/register", json={"email": email or unique_email(), "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['token']}"}
