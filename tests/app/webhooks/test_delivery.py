"""Delivery at the service level: which events go out, rejections and alerts, non-retried answers, a full queue,
and the SSRF guard again at delivery time (DNS rebinding)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import httpx
import pytest

from app.config import load_settings
from app.events import UserEvent
from app.ids import now_ms
from app.market.models import Trade
from app.retry import RetryPolicy
from app.services import Services, build_services
from app.webhooks.delivery import DeliveryOptions, Job, WebhookDispatcher
from app.webhooks.guard import HostGuard
from app.webhooks.service import DeliveryView, WebhookService
from tests.factories import PASSWORD, unique_email
from tests.fakes.webhook_receiver import Receiver, webhook_receiver

FAST = RetryPolicy(initial=0.01, maximum=0.01, max_attempts=3)
ROOMY = 30.0  # attempt timeout: a loaded machine must not turn a delivery into a retry


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    built = build_services(
        load_settings(
            webhook_allowed_hosts="127.0.0.1", webhook_retry_initial_seconds=0.01, webhook_timeout_seconds=30
        ),
        migrate=False,
    )
    await built.alerts.start()
    await built.webhooks.start()
    yield built
    await built.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as server:
        yield server


async def _user(services: Services) -> str:
    return str((await services.auth.register(unique_email(), PASSWORD)).id)


async def _records_when(
    webhooks: WebhookService, user_id: str, webhook_id: str, done: Callable[[list[DeliveryView]], bool]
) -> list[DeliveryView]:
    records: list[DeliveryView] = []
    deadline = asyncio.get_running_loop().time() + 30  # bounds only a failing test
    while asyncio.get_running_loop().time() < deadline:
        records = await webhooks.deliveries(user_id, webhook_id)
        if done(records):
            return records
        await asyncio.sleep(0.02)
    raise AssertionError(f"delivery records never matched: {records}")


def _order_update(user_id: str, status: str) -> UserEvent:
    return UserEvent.create(user_id, "ORDER_UPDATE", {"id": "01ORDER", "status": status, "reject_reason": "no"}, 1)


async def test_a_rejection_is_delivered_and_other_order_updates_are_not(services: Services, receiver: Receiver) -> None:
    user_id = await _user(services)
    webhook, _ = await services.webhooks.create(user_id, receiver.url(), ["rejection"])
    services.bus.publish_user(_order_update(user_id, "FILLED"))
    services.bus.publish_user(UserEvent.create(user_id, "FILL", {"id": "01FILL"}, 1))
    services.bus.publish_user(_order_update(user_id, "REJECTED"))
    await _records_when(services.webhooks, user_id, webhook.id, lambda rows: len(rows) == 1)
    [request] = receiver.received
    body = json.loads(request.body)
    assert body["type"] == "rejection" and body["data"]["status"] == "REJECTED" and body["created_at"] == 1


async def test_a_fired_alert_is_delivered(services: Services, receiver: Receiver) -> None:
    user_id = await _user(services)
    webhook, _ = await services.webhooks.create(user_id, receiver.url("/alerts"), ["alert"])
    alert = await services.alerts.create(user_id, "BTCUSDT", "100000", "ABOVE")
    services.market.apply_trade(Trade("BTCUSDT", Decimal("100001"), Decimal("0.1"), "BUY", now_ms()))
    records = await _records_when(services.webhooks, user_id, webhook.id, lambda rows: len(rows) == 1)
    assert records[0].outcome == "DELIVERED" and records[0].event == "alert"
    body = json.loads(receiver.received[0].body)
    assert receiver.received[0].path == "/alerts"
    assert body["type"] == "alert" and body["data"]["id"] == alert["id"]
    assert body["data"]["trigger_price"] == "100001"


@pytest.mark.parametrize(("status", "error"), [(400, None), (410, None), (302, "redirect not followed")])
async def test_a_definite_answer_is_not_retried(services: Services, status: int, error: str | None) -> None:
    async with webhook_receiver(status, status, status) as receiver:
        user_id = await _user(services)
        webhook, _ = await services.webhooks.create(user_id, receiver.url(), ["rejection"])
        services.bus.publish_user(_order_update(user_id, "REJECTED"))
        records = await _records_when(services.webhooks, user_id, webhook.id, lambda rows: len(rows) == 1)
        assert [(r.attempt, r.outcome, r.status_code, r.error) for r in records] == [(1, "FAILED", status, error)]
        # A later event still goes out: the first one was not retried meanwhile.
        services.bus.publish_user(_order_update(user_id, "REJECTED"))
        await _records_when(services.webhooks, user_id, webhook.id, lambda rows: len(rows) == 2)
        assert len(receiver.received) == 2


async def test_an_unreachable_receiver_is_retried_then_given_up(services: Services) -> None:
    user_id = await _user(services)
    webhook, _ = await services.webhooks.create(user_id, "http://127.0.0.1:9/closed", ["rejection"])
    services.bus.publish_user(_order_update(user_id, "REJECTED"))
    attempts = services.settings.webhook_max_attempts
    records = await _records_when(services.webhooks, user_id, webhook.id, lambda rows: len(rows) == attempts)
    assert [(r.attempt, r.outcome, r.error) for r in reversed(records)] == [
        (n, "FAILED", "connection failed") for n in range(1, attempts + 1)
    ]


async def test_a_full_queue_drops_and_records_the_drop(services: Services) -> None:
    async with webhook_receiver() as receiver:
        user_id = await _user(services)
        webhook, _ = await services.webhooks.create(user_id, receiver.url(), ["fill"])
        dispatcher = WebhookDispatcher(
            services.db,
            services.keybox,
            HostGuard(["127.0.0.1"]),
            DeliveryOptions(timeout=ROOMY, policy=FAST, queue_size=2),
        )
        for n in range(5):  # not started yet: nothing drains the queue
            dispatcher.offer(Job(webhook.id, user_id, "fill", f"EVENT{n}", 1, "{}"))
        dispatcher.start()
        try:
            records = await _records_when(services.webhooks, user_id, webhook.id, lambda rows: len(rows) == 3)
        finally:
            await dispatcher.stop()
        outcomes = sorted((r.outcome, r.error) for r in records)
        assert outcomes == [
            ("DELIVERED", None),
            ("DELIVERED", None),
            ("DROPPED", "3 event(s) dropped: the delivery queue was full"),
        ]
        assert sorted(json.loads(r.body)["id"] for r in receiver.received) == ["EVENT0", "EVENT1"]


async def test_a_silent_receiver_holds_one_worker_and_only_its_users_share_of_the_queue(services: Services) -> None:
    async with webhook_receiver() as receiver:
        slow_user, other_user = await _user(services), await _user(services)
        slow, _ = await services.webhooks.create(slow_user, receiver.url("/slow"), ["fill"])
        other, _ = await services.webhooks.create(other_user, receiver.url(), ["fill"])
        dispatcher = WebhookDispatcher(
            services.db,
            services.keybox,
            HostGuard(["127.0.0.1"]),
            DeliveryOptions(timeout=ROOMY, policy=FAST, queue_size=100, workers=2, per_user=3),
        )
        for n in range(10):  # a burst of fills for a receiver that does not answer
            dispatcher.offer(Job(slow.id, slow_user, "fill", f"SLOW{n}", 1, "{}"))
        dispatcher.offer(Job(other.id, other_user, "fill", "OTHER", 1, "{}"))
        dispatcher.start()
        try:
            delivered = await _records_when(services.webhooks, other_user, other.id, lambda rows: len(rows) == 1)
            assert [r.outcome for r in delivered] == ["DELIVERED"]  # while the slow receiver still holds
            assert receiver.slow_at_once == 1  # one of the slow user's deliveries at a time
            receiver.release.set()
            records = await _records_when(services.webhooks, slow_user, slow.id, lambda rows: len(rows) == 4)
        finally:
            await dispatcher.stop()
        assert sorted((r.outcome, r.error) for r in records) == [("DELIVERED", None)] * 3 + [
            ("DROPPED", "7 event(s) dropped: the delivery queue was full")
        ]
        slow_ids = [json.loads(r.body)["id"] for r in receiver.received if r.path == "/slow"]
        assert slow_ids == ["SLOW0", "SLOW1", "SLOW2"]  # in order


async def test_a_name_that_rebinds_to_loopback_is_refused_at_delivery(services: Services, receiver: Receiver) -> None:
    """Registration saw a public address; at delivery the name resolves to the server itself: nothing is sent."""
    answers = {"hooks.example": ["93.184.216.34"]}

    async def resolve(host: str, _port: int) -> list[str]:
        return answers[host]

    guard = HostGuard(resolve=resolve)  # no allow-list: public addresses only
    dispatcher = WebhookDispatcher(services.db, services.keybox, guard, DeliveryOptions(timeout=ROOMY, policy=FAST))
    webhooks = WebhookService(
        services.db, services.keybox, services.bus, services.alerts, guard, dispatcher, max_per_user=5
    )
    await webhooks.start()
    try:
        user_id = await _user(services)
        webhook, _ = await webhooks.create(user_id, f"http://hooks.example:{receiver.port}/hook", ["rejection"])
        answers["hooks.example"] = ["127.0.0.1"]
        services.bus.publish_user(_order_update(user_id, "REJECTED"))
        records = await _records_when(webhooks, user_id, webhook.id, lambda rows: len(rows) == 1)
    finally:
        await webhooks.stop()
    assert records[0].outcome == "REFUSED" and records[0].attempt == 1
    assert records[0].error == "host hooks.example resolves to a loopback address (127.0.0.1), which is refused"
    assert receiver.received == []


async def test_deleting_the_last_webhook_stops_listening(services: Services, receiver: Receiver) -> None:
    user_id = await _user(services)
    before = services.bus.subscriber_counts()[0], services.alerts.subscriber_count()
    first, _ = await services.webhooks.create(user_id, receiver.url("/1"), ["fill"])
    second, _ = await services.webhooks.create(user_id, receiver.url("/2"), ["alert"])
    assert services.bus.subscriber_counts()[0] == before[0] + 1  # one tap per user, however many webhooks
    await services.webhooks.delete(user_id, first.id)
    assert [w.id for w in await services.webhooks.list_for_user(user_id)] == [second.id]
    await services.webhooks.delete(user_id, second.id)
    assert (services.bus.subscriber_counts()[0], services.alerts.subscriber_count()) == before
    services.bus.publish_user(UserEvent.create(user_id, "FILL", {"id": "01FILL"}, 1))
    assert services.webhooks.dispatcher.queued == 0  # a tap would have queued the job synchronously


async def test_stored_webhooks_are_tapped_again_after_a_restart(database_url: str, receiver: Receiver) -> None:
    settings = load_settings(webhook_allowed_hosts="127.0.0.1")
    first = build_services(settings, migrate=False)
    user_id = str((await first.auth.register(unique_email(), PASSWORD)).id)
    webhook, _ = await first.webhooks.create(user_id, receiver.url(), ["rejection"])
    await first.stop()
    second = build_services(settings, migrate=False)
    await second.webhooks.start()
    try:
        second.bus.publish_user(_order_update(user_id, "REJECTED"))
        await _records_when(second.webhooks, user_id, webhook.id, lambda rows: len(rows) == 1)
    finally:
        await second.stop()
    assert len(receiver.received) == 1


@pytest.mark.parametrize(("certificate_for", "outcome"), [("hooks.test", "DELIVERED"), ("other.test", "FAILED")])
async def test_https_connects_to_the_checked_address_and_checks_the_certificate_for_the_name(
    services: Services, certificate_for: str, outcome: str
) -> None:
    """The request goes to the pinned address, while TLS (server name, certificate) and Host use the URL's name."""
    async with webhook_receiver(tls_host=certificate_for) as receiver:

        async def resolve(host: str, _port: int) -> list[str]:
            assert host == "hooks.test"
            return ["127.0.0.1"]

        guard = HostGuard(["hooks.test"], resolve=resolve)
        transport = httpx.AsyncHTTPTransport(verify=receiver.client_context)
        dispatcher = WebhookDispatcher(
            services.db, services.keybox, guard, DeliveryOptions(timeout=ROOMY, policy=FAST), transport=transport
        )
        webhooks = WebhookService(
            services.db, services.keybox, services.bus, services.alerts, guard, dispatcher, max_per_user=5
        )
        await webhooks.start()
        try:
            user_id = await _user(services)
            url = f"https://hooks.test:{receiver.port}/tls"
            webhook, _ = await webhooks.create(user_id, url, ["rejection"])
            services.bus.publish_user(_order_update(user_id, "REJECTED"))
            records = await _records_when(
                webhooks, user_id, webhook.id, lambda rows: any(r.outcome == outcome for r in rows)
            )
        finally:
            await webhooks.stop()
    if outcome == "DELIVERED":
        [request] = receiver.received
        assert request.headers["Host"] == f"hooks.test:{receiver.port}" and request.path == "/tls"
    else:
        assert receiver.received == [] and records[-1].error == "TLS certificate not valid for the host"


async def test_stop_ends_a_worker_whose_post_finishes_as_it_is_cancelled(services: Services) -> None:
    """The cancellation lands in the same loop turn as the answer: on Python 3.11 `asyncio.wait_for` lost it
    (gh-86296) and stop() waited for that worker for ever (seen as a 120 s CI timeout)."""
    stopping: list[asyncio.Task[None]] = []

    class StopAsItAnswers(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            stopping.append(asyncio.create_task(dispatcher.stop()))
            return httpx.Response(200)

    user_id = await _user(services)
    webhook, _ = await services.webhooks.create(user_id, "http://127.0.0.1:9/hook", ["fill"])
    dispatcher = WebhookDispatcher(
        services.db,
        services.keybox,
        HostGuard(["127.0.0.1"]),
        DeliveryOptions(timeout=ROOMY, policy=FAST),
        transport=StopAsItAnswers(),
    )
    dispatcher.start()
    dispatcher.offer(Job(webhook.id, user_id, "fill", "EVENT", 1, "{}"))
    deadline = asyncio.get_running_loop().time() + 30  # bounds only a failing test
    while not stopping and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    finished, _ = await asyncio.wait(stopping, timeout=10)
    assert finished == {stopping[0]} and dispatcher.queued == 0
