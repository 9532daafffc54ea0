"""/ws with an API key over a real uvicorn: the key works in the query and as a bearer header, a revoke closes the
key's open sockets at once with 1008, and a revoked or unknown key is closed at the door."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from tests.app.api.test_ws_sessions import closed_with, connected
from tests.factories import register


async def new_key(http: httpx.AsyncClient, login: dict[str, str], scopes: list[str]) -> tuple[str, str]:
    created = await http.post("/api/api-keys", json={"label": "ws bot", "scopes": scopes}, headers=login)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


async def pong(ws: Any) -> None:
    await ws.send(json.dumps({"type": "PING"}))
    async with asyncio.timeout(5):
        while json.loads(await ws.recv())["type"] != "PONG":
            pass


async def test_revoking_a_key_closes_its_open_sockets_and_only_those(server: str, http: httpx.AsyncClient) -> None:
    user_id, login = await register(http)
    key_id, key = await new_key(http, login, ["read"])
    _, other_key = await new_key(http, login, ["read"])
    in_query = await connected(server, key)
    in_header = await websockets.connect(f"ws://{server}/ws", additional_headers={"Authorization": f"Bearer {key}"})
    first = json.loads(await asyncio.wait_for(in_header.recv(), 5))
    assert first["type"] == "CONNECTED" and first["data"]["user_id"] == user_id
    other = await connected(server, other_key)
    session = await connected(server, login["Authorization"].removeprefix("Bearer "))

    assert (await http.delete(f"/api/api-keys/{key_id}", headers=login)).status_code == 204
    for ws in (in_query, in_header):
        code, reason, _ = await closed_with(ws)
        assert code == 1008 and "revoked" in reason
    for ws in (other, session):  # the user's other key and login session are untouched
        await pong(ws)
        await ws.close()


async def test_a_revoked_or_unknown_key_is_closed_at_the_door(server: str, http: httpx.AsyncClient) -> None:
    _, login = await register(http)
    key_id, key = await new_key(http, login, ["read"])
    assert (await http.delete(f"/api/api-keys/{key_id}", headers=login)).status_code == 204
    for credential in (key, "tw_" + "y" * 43):
        ws = await websockets.connect(f"ws://{server}/ws?token={credential}")
        code, reason, _ = await closed_with(ws)
        assert code == 1008 and "not valid" in reason
