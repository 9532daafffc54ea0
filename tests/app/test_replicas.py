"""Two replicas in one test process: two service containers on the same database, each with its own Redis fan-out
(REDIS_URL, a channel prefix of its own per test) and its own real uvicorn. Only A runs the execution engine
(execution stays single-owner until partition leases exist: docs/scaling.md)."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI

from app.api import mount_api
from app.config import load_settings
from app.events import UserEvent
from app.services import Services, build_services
from storage.repositories import events
from tests.app.api.test_ws_sessions import closed_with, connected, serve
from tests.factories import place, register, wait_for, wait_for_status
from tests.fakes.webhook_receiver import webhook_receiver


def api_app(services: Services) -> FastAPI:
    app = FastAPI()
    app.state.services = services
    mount_api(app)
    return app


def replica(redis_url: str, channel_prefix: str) -> Services:
    settings = load_settings(
        redis_url=redis_url,
        redis_channel_prefix=channel_prefix,
        webhook_allowed_hosts="127.0.0.1",  # the loopback receiver of the webhook test
        webhook_timeout_seconds=30,  # a loaded machine must not turn a delivery into a retry
    )
    return build_services(settings, migrate=False)


@pytest.fixture
async def replicas(database_url: str, redis_url: str, channel_prefix: str) -> AsyncIterator[tuple[Services, Services]]:
    a, b = replica(redis_url, channel_prefix), replica(redis_url, channel_prefix)
    try:
        for services in (a, b):
            assert services.fanout is not None
            await services.fanout.start()
        await a.engine.start()
        await wait_for(
            lambda: all(s.fanout is not None and s.fanout.subscribed.is_set() for s in (a, b)), what="subscriptions"
        )
        yield a, b
    finally:
        await a.stop()
        await b.stop()


@pytest.fixture
async def servers(replicas: tuple[Services, Services]) -> AsyncIterator[tuple[str, str]]:
    a, b = replicas
    async with AsyncExitStack() as stack:
        address_a = await stack.enter_async_context(serve(api_app(a), a.settings))
        address_b = await stack.enter_async_context(serve(api_app(b), b.settings))
        yield address_a, address_b


@pytest.fixture
async def clients(servers: tuple[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=f"http://{servers[0]}") as http_a,
        httpx.AsyncClient(base_url=f"http://{servers[1]}") as http_b,
    ):
        yield http_a, http_b


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_without_redis_url_nothing_leaves_the_process(services: Services) -> None:
    """The default (one process) builds no fan-out: the event path is the in-process one, unchanged."""
    assert services.settings.redis_url == ""
    assert services.fanout is None
    assert services.bus.relay is None and services.auth.versions.relay is None and services.api_keys.cache.relay is None


async def test_an_order_placed_on_a_reaches_b_subscribers_and_sockets_once(
    replicas: tuple[Services, Services],
    servers: tuple[str, str],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = replicas
    http_a, _ = clients
    user_id, alice = await register(http_a)
    _, bob = await register(http_a)
    on_b: list[UserEvent] = []
    b.bus.subscribe_user(user_id, on_b.append)
    ws = await connected(servers[1], token_of(alice))
    bobs_ws = await connected(servers[1], token_of(bob))

    placed = await place(http_a, alice)
    assert placed.status_code == 202, placed.text
    await wait_for_status(http_a, alice, placed.json()["id"], "FILLED")
    latest = await a.db.read(lambda s: events.latest_seq(s, user_id))
    await wait_for(lambda: on_b and on_b[-1].seq == latest, what="every event of the order on B's bus")

    assert [e.seq for e in on_b] == list(range(1, latest + 1))  # each committed event once, in order
    assert {"ORDER_UPDATE", "FILL", "BALANCE_UPDATE"} <= {e.type for e in on_b}
    socket_seqs: list[int] = []
    while not socket_seqs or socket_seqs[-1] < latest:
        message = json.loads(await ws.recv())
        if "seq" in message:
            socket_seqs.append(message["seq"])
    assert socket_seqs == list(range(1, latest + 1))
    # Bob's socket on B heard none of it: a PING is answered before anything of Alice's could arrive.
    await bobs_ws.send(json.dumps({"type": "PING"}))
    while (message := json.loads(await bobs_ws.recv()))["type"] != "PONG":
        assert "seq" not in message
    await ws.close()
    await bobs_ws.close()


async def test_log_out_everywhere_on_a_ends_sockets_and_tokens_on_b(
    servers: tuple[str, str], clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    http_a, http_b = clients
    _, alice = await register(http_a)
    assert (await http_b.get("/api/trading/orders", headers=alice)).status_code == 200  # B knows the token
    ws = await connected(servers[1], token_of(alice))

    assert (await http_a.post("/auth/logout-all", headers=alice)).status_code == 204
    code, reason, _ = await closed_with(ws, timeout=10)
    assert code == 1008 and "session has ended" in reason
    refused = await http_b.get("/api/trading/orders", headers=alice)
    assert refused.status_code == 401, refused.text


async def test_a_key_revoked_on_a_stops_working_on_b(
    servers: tuple[str, str], clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    http_a, http_b = clients
    _, login = await register(http_a)
    created = await http_a.post("/api/api-keys", json={"label": "bot", "scopes": ["read"]}, headers=login)
    assert created.status_code == 201, created.text
    key_id, key = created.json()["id"], created.json()["key"]
    bot = {"Authorization": f"Bearer {key}"}
    assert (await http_b.get("/api/trading/orders", headers=bot)).status_code == 200  # cached on B
    ws = await connected(servers[1], key)

    assert (await http_a.delete(f"/api/api-keys/{key_id}", headers=login)).status_code == 204
    code, reason, _ = await closed_with(ws, timeout=10)
    assert code == 1008 and "revoked" in reason
    refused = await http_b.get("/api/trading/orders", headers=bot)  # B heard it: no waiting, no database read
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "INVALID_API_KEY"


async def test_a_webhook_created_on_b_is_sent_by_a_for_a_fill_a_executed_once(
    replicas: tuple[Services, Services], clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    """A sends the webhooks of the events it commits: it learns of B's new webhook through Redis; B, hearing the
    same fill from A, sends nothing."""
    a, b = replicas
    http_a, http_b = clients
    await a.webhooks.start()  # its index is loaded now, before the webhook exists: only the fan-out can add it
    async with webhook_receiver() as receiver:
        user_id, alice = await register(http_b)
        created = await http_b.post("/api/webhooks", json={"url": receiver.url(), "events": ["fill"]}, headers=alice)
        assert created.status_code == 201, created.text
        await _barrier(b, a)  # the webhook's announcement came first
        fills_on_b: list[UserEvent] = []
        b.bus.subscribe_user(user_id, lambda e: fills_on_b.append(e) if e.type == "FILL" else None)

        placed = await place(http_a, alice)
        assert placed.status_code == 202, placed.text
        await wait_for_status(http_a, alice, placed.json()["id"], "FILLED")
        fills = await a.db.read(lambda s: [e for e in events.since(s, user_id, 0, 500) if e.type == "FILL"])
        await wait_for(lambda: len(fills_on_b) == len(fills), what="the fills on B")
        assert b.webhooks.dispatcher.queued == 0  # B's tap is on the bus path: it would have queued by now
        await wait_for(lambda: len(receiver.received) == len(fills), what="one delivery per fill, from A")
        bodies = [json.loads(request.body) for request in receiver.received]
        assert {(body["type"], body["data"]["order_id"]) for body in bodies} == {("fill", placed.json()["id"])}


async def test_a_webhook_announcement_missed_while_unsubscribed_is_read_from_the_database(
    replicas: tuple[Services, Services],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_admin: redis.Redis,
) -> None:
    a, b = replicas
    http_a, http_b = clients
    await a.webhooks.start()
    async with webhook_receiver() as receiver:
        _, alice = await register(http_b)
        b.webhooks.relay = None  # the announcement is lost, as while A is not subscribed
        created = await http_b.post("/api/webhooks", json={"url": receiver.url(), "events": ["fill"]}, headers=alice)
        assert created.status_code == 201, created.text
        fanout = a.fanout
        assert fanout is not None
        resyncs = fanout.resyncs
        for client in await redis_admin.client_list(_type="pubsub"):
            if client["name"] == f"tradewind-{fanout.origin}":
                await redis_admin.client_kill_filter(_id=client["id"])
        await wait_for(lambda: fanout.resyncs > resyncs, what="A to subscribe again and re-read")

        placed = await place(http_a, alice)
        assert placed.status_code == 202, placed.text
        await wait_for_status(http_a, alice, placed.json()["id"], "FILLED")
        await wait_for(lambda: receiver.received, what="A's delivery after re-reading its webhook index")


async def _barrier(sender: Services, receiver: Services) -> None:
    """Wait until `receiver` has handled everything `sender` published so far (pub/sub keeps publish order)."""
    marker = UserEvent.create("barrier", "MARKER", {}, ts=0)
    marker.numbered(int.from_bytes(os.urandom(4), "big") + 1)
    seen: list[UserEvent] = []
    unsubscribe = receiver.bus.subscribe_user("barrier", seen.append)
    sender.bus.publish_user(marker)
    await wait_for(lambda: seen, what="the barrier")
    unsubscribe()


async def test_with_redis_unreachable_the_app_starts_and_serves_locally(
    database_url: str, channel_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alone = replica(f"redis://127.0.0.1:{port}/0", channel_prefix)
    with caplog.at_level(logging.INFO, logger="app.fanout"):
        await alone.start()
        try:
            transport = httpx.ASGITransport(app=api_app(alone))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                user_id, alice = await register(http)
                heard: list[UserEvent] = []
                alone.bus.subscribe_user(user_id, heard.append)
                placed = await place(http, alice)
                assert placed.status_code == 202, placed.text
                await wait_for_status(http, alice, placed.json()["id"], "FILLED")
                await wait_for(lambda: any(e.type == "FILL" for e in heard), what="the fill on the local bus")
                await wait_for(lambda: "unreachable" in caplog.text, what="the warning")
        finally:
            await alone.stop()
    assert f"127.0.0.1:{port}" in caplog.text  # which Redis, said once at start
    assert "this replica serves its own events only" in caplog.text
