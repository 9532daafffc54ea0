"""A WebSocket lives only as long as its token, and the socket limits, over a real uvicorn configured like main.py
(wsproto, app/api/server_options.py): log out everywhere / password change / expiry close with 1008 within 5 s,
frames over 64 KiB close with 1009, the 21st socket of a user is refused, and proxy headers give the client address.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI

from app.api.server_options import WS_MAX_BYTES
from app.api.ws import MAX_SOCKETS_PER_USER
from app.services import Services
from tests.app.api.conftest import serve
from tests.factories import PASSWORD, place, register, unique_email


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def connected(server: str, token: str) -> Any:
    """An open socket past its CONNECTED message."""
    ws = await websockets.connect(f"ws://{server}/ws?token={token}", max_size=None)
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "CONNECTED"
    return ws


async def closed_with(ws: Any, timeout: float = 5.0) -> tuple[int, str, float]:
    """Read until the server closes the socket; (code, reason, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None, "the server did not send a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason, time.monotonic() - started


async def test_log_out_everywhere_closes_an_open_socket_with_1008(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    _, bob = await register(http)
    old = await connected(server, token_of(alice))
    bobs = await connected(server, token_of(bob))
    assert (await http.post("/auth/logout-all", headers=alice)).status_code == 204
    code, reason, seconds = await closed_with(old)
    assert code == 1008 and "session has ended" in reason and seconds < 5
    await bobs.send(json.dumps({"type": "PING"}))  # another user's socket is untouched
    async with asyncio.timeout(5):
        while json.loads(await bobs.recv())["type"] != "PONG":
            pass
    await bobs.close()


async def test_a_password_change_closes_the_other_sockets(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    old = await connected(server, token_of(alice))
    body = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    changed = await http.post("/auth/password", json=body, headers=alice)
    assert changed.status_code == 200
    code, _, seconds = await closed_with(old)
    assert code == 1008 and seconds < 5
    fresh = await connected(server, changed.json()["token"])  # the new token opens sockets that stay
    await fresh.send(json.dumps({"type": "PING"}))
    async with asyncio.timeout(5):
        while json.loads(await fresh.recv())["type"] != "PONG":
            pass
    await fresh.close()


async def test_a_socket_is_closed_when_its_token_expires(server: str, services: Services) -> None:
    user = await services.auth.register(unique_email("ws"), PASSWORD)
    services.settings.jwt_expire_hours = 2 / 3600  # tokens of two seconds
    ws = await connected(server, await services.auth.issue_token(user.id))
    code, reason, seconds = await closed_with(ws, timeout=6)
    assert code == 1008 and "expired" in reason
    assert seconds < 3.5


async def test_a_frame_over_64_kib_is_closed_with_1009(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    ws = await connected(server, token_of(alice))
    at_limit = json.dumps({"type": "PING", "pad": ""})
    at_limit = at_limit.replace('""', '"' + "x" * (WS_MAX_BYTES - len(at_limit)) + '"')
    assert len(at_limit.encode()) == WS_MAX_BYTES
    await ws.send(at_limit)  # exactly 64 KiB is still a message
    async with asyncio.timeout(5):
        while json.loads(await ws.recv())["type"] != "PONG":
            pass
    await ws.send("x" * (WS_MAX_BYTES + 1))
    code, _, _ = await closed_with(ws)
    assert code == 1009


async def test_the_twenty_first_socket_of_a_user_is_refused(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    _, bob = await register(http)
    sockets = [await connected(server, token_of(alice)) for _ in range(MAX_SOCKETS_PER_USER)]
    extra = await websockets.connect(f"ws://{server}/ws?token={token_of(alice)}")
    code, reason, _ = await closed_with(extra)
    assert code == 1008 and f"at most {MAX_SOCKETS_PER_USER}" in reason
    bobs = await connected(server, token_of(bob))  # the limit is per user
    await sockets.pop().close()
    await asyncio.sleep(0.2)  # the server notices the close
    replacement = await connected(server, token_of(alice))
    for ws in [*sockets, bobs, replacement]:
        await ws.close()


@pytest.mark.parametrize(("trusted", "separate"), [("127.0.0.1", True), ("", False)])
async def test_the_client_address_comes_from_a_trusted_proxy_only(
    api_app: FastAPI, services: Services, trusted: str, separate: bool
) -> None:
    """Behind a trusted proxy, two forwarded clients have their own login counts; from an untrusted peer the header
    is ignored and both are the peer."""
    services.settings.forwarded_allow_ips = trusted
    async with serve(api_app, services.settings) as address, httpx.AsyncClient(base_url=f"http://{address}") as http:
        email = unique_email()
        await register(http, email)

        async def login(forwarded_for: str, password: str) -> int:
            body = {"email": email, "password": password}
            response = await http.post("/auth/login", json=body, headers={"X-Forwarded-For": forwarded_for})
            return response.status_code

        assert [await login("198.51.100.66", "guess guess") for _ in range(5)] == [401] * 5
        assert await login("198.51.100.66", PASSWORD) == 429
        assert await login("192.0.2.10", PASSWORD) == (200 if separate else 429)


class RecordingSocket:
    """Stands in for the WebSocket: records what the session sends; `on_send` runs after each message."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.on_send = lambda: None

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.on_send()


async def test_resume_replays_the_log_in_pages_and_stops_when_the_session_ends(
    running: Services, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.api import ws as ws_module
    from storage.repositories import events

    monkeypatch.setattr(ws_module, "REPLAY_PAGE", 2)
    user_id, alice = await register(client)
    for _ in range(2):
        assert (await place(client, alice, quantity="0.0001")).status_code == 202
    await running.engine.drain()
    latest = await running.db.read(lambda s: events.latest_seq(s, user_id))
    assert latest >= 6
    reads = 0
    read = running.db.read

    async def counting_read(work: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read(work)

    monkeypatch.setattr(running.db, "read", counting_read)
    whole = RecordingSocket()
    await ws_module.SocketSession(whole, user_id, running)._replay()  # type: ignore[arg-type]
    assert [m["seq"] for m in whole.sent] == list(range(1, latest + 1))
    assert reads == latest // 2 + 1  # pages of two, and the short last page ends it

    ending = RecordingSocket()
    session = ws_module.SocketSession(ending, user_id, running)  # type: ignore[arg-type]
    ending.on_send = lambda: session._end("logged out")  # the session ends during the first page
    await session._replay()
    assert [m["seq"] for m in ending.sent] == [1, 2]  # that page is finished, no further one is read
