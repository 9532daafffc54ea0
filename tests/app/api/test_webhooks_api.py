"""/api/webhooks end to end: a real receiver on loopback (allowed through WEBHOOK_ALLOWED_HOSTS=127.0.0.1) gets
signed deliveries of the caller's fills; failures are retried and every attempt is listed; refused URLs and
other users' webhooks answer 4xx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.services import Services
from app.webhooks.signing import verify
from tests.factories import place, register, wait_for, wait_for_status
from tests.fakes.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture(autouse=True)
def _webhook_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read by the `services` fixture's load_settings(): loopback allowed, tiny retry delays, a low cap."""
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("WEBHOOK_RETRY_INITIAL_SECONDS", "0.01")
    monkeypatch.setenv("WEBHOOK_MAX_PER_USER", "2")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "30")  # a loaded machine must not turn a delivery into a retry


@pytest.fixture
async def delivering(running: Services) -> AsyncIterator[Services]:
    await running.webhooks.start()
    yield running
    await running.webhooks.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as server:
        yield server


async def _deliveries(client: httpx.AsyncClient, headers: dict[str, str], webhook_id: str) -> list[dict[str, object]]:
    response = await client.get(f"/api/webhooks/{webhook_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _records_when(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    webhook_id: str,
    done: Callable[[list[dict[str, object]]], bool],
) -> list[dict[str, object]]:
    """Poll the deliveries endpoint until `done(records)` (a record is stored just after its attempt ends)."""
    records: list[dict[str, object]] = []
    deadline = asyncio.get_running_loop().time() + 30  # bounds only a failing test
    while asyncio.get_running_loop().time() < deadline:
        records = await _deliveries(client, headers, webhook_id)
        if done(records):
            return records
        await asyncio.sleep(0.02)
    raise AssertionError(f"delivery records never matched: {records}")


async def test_a_fill_is_delivered_signed(client: httpx.AsyncClient, delivering: Services, receiver: Receiver) -> None:
    _, headers = await register(client)
    created = await client.post("/api/webhooks", json={"url": receiver.url(), "events": ["fill"]}, headers=headers)
    assert created.status_code == 201, created.text
    webhook = created.json()
    assert webhook["events"] == ["fill"] and webhook["url"] == receiver.url()
    secret = webhook["secret"]
    assert secret.startswith("whsec_")
    listed = (await client.get("/api/webhooks", headers=headers)).json()
    assert listed == [{k: v for k, v in webhook.items() if k != "secret"}]  # the secret is shown once only

    order = (await place(client, headers)).json()
    await wait_for_status(client, headers, order["id"], "FILLED")
    await wait_for(lambda: receiver.received, what="a delivery")
    request = receiver.received[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Tradewind-Event"] == "fill"
    assert verify(secret, request.headers["Tradewind-Signature"], request.body, now=int(time.time()))
    assert not verify("whsec_wrong", request.headers["Tradewind-Signature"], request.body, now=int(time.time()))
    body = json.loads(request.body)
    assert body["type"] == "fill" and body["id"] == request.headers["Tradewind-Event-Id"]
    assert body["data"]["order_id"] == order["id"] and body["data"]["symbol"] == "BTCUSDT"
    assert isinstance(body["data"]["price"], str)  # money stays a decimal string

    records = await _records_when(client, headers, webhook["id"], lambda rows: len(rows) == len(receiver.received))
    assert {(r["outcome"], r["status_code"], r["attempt"], r["event"]) for r in records} == {
        ("DELIVERED", 200, 1, "fill")
    }


async def test_a_500_is_retried_then_succeeds(client: httpx.AsyncClient, delivering: Services) -> None:
    async with webhook_receiver(500, 503) as receiver:
        _, headers = await register(client)
        webhook = (
            await client.post("/api/webhooks", json={"url": receiver.url(), "events": ["fill"]}, headers=headers)
        ).json()
        order = (await place(client, headers)).json()
        filled = await wait_for_status(client, headers, order["id"], "FILLED")
        assert len(filled["fills"]) == 1  # type: ignore[arg-type]  # one event: its attempts get 500, 503, 200
        records = await _records_when(
            client, headers, webhook["id"], lambda rows: any(r["outcome"] == "DELIVERED" for r in rows)
        )
        assert [(r["attempt"], r["outcome"], r["status_code"]) for r in reversed(records)] == [
            (1, "FAILED", 500),
            (2, "FAILED", 503),
            (3, "DELIVERED", 200),
        ]
        assert all(isinstance(r["duration_ms"], int) for r in records)
        assert len(receiver.received) == 3
        ids = {r.headers["Tradewind-Event-Id"] for r in receiver.received}
        assert len(ids) == 1  # retries carry the same event id, so the receiver can de-duplicate


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/hook", "host 10.0.0.1 is not allowed here (WEBHOOK_ALLOWED_HOSTS)"),
        ("http://169.254.169.254/latest/meta-data", "host 169.254.169.254 is not allowed here (WEBHOOK_ALLOWED_HOSTS)"),
        ("ftp://127.0.0.1/hook", "url must start with http:// or https://"),
        ("http://127.0.0.1/" + "a" * 2100, "url must be at most 2048 characters"),
    ],
)
async def test_a_refused_url_is_a_clear_422_and_stores_nothing(
    client: httpx.AsyncClient, services: Services, url: str, message: str
) -> None:
    _, headers = await register(client)
    response = await client.post("/api/webhooks", json={"url": url, "events": ["fill"]}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "WEBHOOK_URL_REFUSED", "message": message, "field": "url"}
    assert (await client.get("/api/webhooks", headers=headers)).json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["trade"]}, "events"),
        ({"url": "http://127.0.0.1/x"}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["fill"], "extra": 1}, "extra"),
    ],
)
async def test_bad_bodies_are_422(client: httpx.AsyncClient, services: Services, body: object, field: str) -> None:
    _, headers = await register(client)
    response = await client.post("/api/webhooks", json=body, headers=headers)
    assert response.status_code == 422 and response.json()["error"]["field"] == field


async def test_at_most_n_webhooks_per_user(client: httpx.AsyncClient, services: Services) -> None:
    _, headers = await register(client)
    for n in range(2):
        body = {"url": f"http://127.0.0.1:9/{n}", "events": ["alert"]}
        assert (await client.post("/api/webhooks", json=body, headers=headers)).status_code == 201
    third = await client.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/2", "events": ["alert"]}, headers=headers
    )
    assert third.status_code == 422 and third.json()["error"]["code"] == "TOO_MANY_WEBHOOKS"
    assert len((await client.get("/api/webhooks", headers=headers)).json()) == 2


async def test_users_never_see_each_others_webhooks(client: httpx.AsyncClient, services: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    body = {"url": "http://127.0.0.1:9/alice", "events": ["fill", "rejection"]}
    webhook = (await client.post("/api/webhooks", json=body, headers=alice)).json()
    assert webhook["events"] == ["fill", "rejection"]
    assert (await client.get("/api/webhooks", headers=bob)).json() == []
    for response in (
        await client.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=bob),
        await client.delete(f"/api/webhooks/{webhook['id']}", headers=bob),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
    assert [w["id"] for w in (await client.get("/api/webhooks", headers=alice)).json()] == [webhook["id"]]
    assert (await client.delete(f"/api/webhooks/{webhook['id']}", headers=alice)).status_code == 204
    assert (await client.get("/api/webhooks", headers=alice)).json() == []
    assert (await client.get("/api/webhooks")).status_code == 401
