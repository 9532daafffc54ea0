"""The order lane (app/api/order_lane.py) answers POST /api/trading/orders exactly as the FastAPI route does:
every request below goes to an app with the lane and to one without it, on the same services, and the answers
must be the same (status, content type, body; for a new order the same fields and a PENDING order)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from app.api import mount_api, order_lane
from app.services import Services
from tests.factories import register

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
GOOD = b'{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}'
JSON = "application/json"


def app_for(services: Services, *, with_order_lane: bool) -> FastAPI:
    app = FastAPI()
    app.state.services = services
    mount_api(app, with_order_lane=with_order_lane)
    return app


@pytest.fixture
async def both(running: Services) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(client of the app with the lane, client of the app without it), on the same services."""
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_for(running, with_order_lane=lane)), base_url="http://test"
        )
        for lane in (True, False)
    ]
    async with clients[0], clients[1]:
        yield clients[0], clients[1]


async def post(client: httpx.AsyncClient, content: bytes | None, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/api/trading/orders", content=content, headers=headers)


def answer(response: httpx.Response) -> tuple[int, str | None, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if response.status_code == 202:  # a new order each time: compare its shape, not its ids and times
        body = (sorted(body), body["status"], body["symbol"], body["quantity"])
    return response.status_code, response.headers.get("content-type"), body


async def same_answer(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], content: bytes | None, headers: dict[str, str]
) -> tuple[int, str | None, Any]:
    lane, route = both
    with_lane, without = answer(await post(lane, content, headers)), answer(await post(route, content, headers))
    assert with_lane == without
    return with_lane


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (GOOD, JSON, 202),
        (GOOD, "application/json; charset=utf-8", 202),
        (GOOD, "application/vnd.bot+json", 202),  # FastAPI reads any +json; the lane hands it over
        (GOOD, "text/plain", 422),
        (GOOD, None, 422),
        (b"", JSON, 400),
        (b"null", JSON, 422),
        (b"[1, 2]", JSON, 422),
        (b'{"symbol": "BTCUSDT", ', JSON, 400),
        (b"\xff\xfe", JSON, 400),
        (b'{"symbol": "BTCUSDT", "side": "HOLD", "type": "MARKET", "quantity": "1"}', JSON, 422),
        (b'{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "x": 1}', JSON, 422),
        (b'{"symbol": "DOGEUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}', JSON, 422),  # service
        (b'{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": 0.01}', JSON, 202),
    ],
)
async def test_bodies_get_the_routes_answer(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    content: bytes,
    content_type: str | None,
    status: int,
) -> None:
    _, auth = await register(both[1])
    headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
    assert (await same_answer(both, content, headers))[0] == status


@pytest.mark.parametrize(
    ("authorization", "content", "status", "code"),
    [
        (None, GOOD, 401, "NOT_AUTHENTICATED"),
        ("Basic dXNlcjpwYXNz", GOOD, 401, "NOT_AUTHENTICATED"),
        ("Bearer", GOOD, 401, "NOT_AUTHENTICATED"),
        ("Bearer not-a-jwt", GOOD, 401, "INVALID_TOKEN"),
        ("bearer not-a-jwt", GOOD, 401, "INVALID_TOKEN"),
        ("Bearer tw_" + "x" * 40, GOOD, 401, "INVALID_API_KEY"),
        ("Bearer not-a-jwt", b'{"side": "BUY"}', 401, "INVALID_TOKEN"),  # auth before the body's fields
        ("Bearer not-a-jwt", b"{", 400, "MALFORMED_JSON"),  # unreadable JSON before auth
    ],
)
async def test_credentials_get_the_routes_answer(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    authorization: str | None,
    content: bytes,
    status: int,
    code: str,
) -> None:
    headers = {"Content-Type": JSON, **({"Authorization": authorization} if authorization else {})}
    got_status, _, body = await same_answer(both, content, headers)
    assert (got_status, body["error"]["code"]) == (status, code)


async def test_a_read_only_key_is_refused_and_a_trade_key_places(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    _, login = await register(both[1])
    keys = {}
    for scope in ("read", "trade"):
        created = await both[1].post("/api/api-keys", json={"label": scope, "scopes": [scope]}, headers=login)
        keys[scope] = {"Authorization": f"Bearer {created.json()['key']}", "Content-Type": JSON}
    status, _, body = await same_answer(both, GOOD, keys["read"])
    assert (status, body["error"]["code"]) == (403, "SCOPE_REQUIRED")
    assert (await same_answer(both, GOOD, keys["trade"]))[0] == 202


async def test_a_repeated_client_order_id_answers_the_stored_order_with_200(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], running: Services
) -> None:
    _, auth = await register(both[1])
    headers = {**auth, "Content-Type": JSON}
    first = await post(
        both[0],
        b'{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "client_order_id": "bot-1"}',
        headers,
    )
    assert first.status_code == 202
    await running.engine.drain()  # executed: both answers below show the order as it now stays (FILLED)
    again = b'{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.02", "client_order_id": "bot-1"}'
    status, _, body = await same_answer(both, again, headers)
    assert status == 200 and body["id"] == first.json()["id"] and body["quantity"] == "0.01"


async def test_a_body_sent_in_pieces_or_too_large_gets_the_routes_answer(running: Services) -> None:
    """Without Content-Length (chunked) the lane hands the request over; over the limit it is a 413."""
    lane_app = app_for(running, with_order_lane=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lane_app), base_url="http://test") as client:
        _, auth = await register(client)

        async def pieces() -> AsyncIterator[bytes]:
            yield GOOD[:10]
            yield GOOD[10:]

        chunked = await client.post("/api/trading/orders", content=pieces(), headers={**auth, "Content-Type": JSON})
        big = await post(client, b" " * 1_000_001 + GOOD, {**auth, "Content-Type": JSON})
    assert chunked.status_code == 202 and chunked.json()["status"] == "PENDING"
    assert big.status_code == 413 and big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_lane_serves_a_valid_order_itself_and_hands_the_rest_over_with_its_body(
    running: Services, client: httpx.AsyncClient
) -> None:
    _, auth = await register(client)
    app = app_for(running, with_order_lane=True)
    handed: list[bytes] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        handed.append(message["body"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call(body: bytes) -> int:
        headers = [
            (b"authorization", auth["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {"type": "http", "method": "POST", "path": order_lane.PATH, "headers": headers, "app": app}
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await order_lane.place_order(scope, receive, send, route)
        return int(sent[0]["status"])

    assert await call(GOOD) == 202 and handed == []
    assert await call(b'{"side": "BUY"}') == 418 and handed == [b'{"side": "BUY"}']
