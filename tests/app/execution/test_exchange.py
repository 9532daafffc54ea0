"""Orders on a Binance Spot Testnet account, end to end through the engine, against the fake exchange: the same
lifecycle as paper, plus the exchange failure modes (in flight, throttled, restarts, external orders)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from app.cluster.leases import LeaseLost, LeaseStore
from app.cluster.partitions import partition_lease_name, partition_of
from app.cluster.scope import PartitionScope
from app.errors import Conflict
from app.events import UserEvent
from app.execution import exchange_worker
from app.orders import OrderRequest
from app.services import Services
from app.venues.binance_testnet import BinanceTestnetVenue
from storage.repositories import accounts as account_repo
from storage.repositories import events
from tests.app.execution.conftest import API_KEY, SECRET
from tests.factories import PASSWORD, unique_email
from tests.fakes.binance import FakeBinance, ccxt_config


async def place(services: Services, user_id: str, account_id: str, **fields: Any) -> dict[str, Any]:
    request = OrderRequest(
        **{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "account_id": account_id, **fields}
    )
    return (await services.orders.submit(user_id, request)).order


async def until(services: Services, user_id: str, order_id: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            order = await services.orders.get(user_id, order_id)
            if order["status"] in statuses:
                return order
            await asyncio.sleep(0.05)


async def test_market_order_fills_with_the_exchange_commission(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    order = await place(services, user, account)
    filled = await until(services, user, order["id"], "FILLED")
    assert filled["filled_quantity"] == "0.01"
    assert filled["fee_asset"] == "BTC" and Decimal(filled["fee"]) > 0
    [at_exchange] = fake.orders(API_KEY)
    assert at_exchange.client_order_id == f"tw{order['id']}"
    async with asyncio.timeout(10):  # balances come from the exchange (stream or reconciliation)
        while True:
            balances = {b.asset: b for b in await services.portfolio.balances(user, account)}
            if "BTC" in balances and balances["BTC"].free == fake.balances(API_KEY)["BTC"][0]:
                break
            await asyncio.sleep(0.05)


async def test_exchange_refusal_is_rejected_with_its_message(testnet: tuple[Services, str, str]) -> None:
    services, user, account = testnet
    order = await place(services, user, account, quantity="5")  # ~300k USDT with 10k available
    rejected = await until(services, user, order["id"], "REJECTED")
    assert rejected["reject_reason"] == "Account has insufficient balance for requested action."


async def test_symbols_the_testnet_does_not_list_are_refused_at_intake(testnet: tuple[Services, str, str]) -> None:
    from app.errors import ValidationFailed

    services, user, account = testnet
    with pytest.raises(ValidationFailed) as refused:
        await place(services, user, account, symbol="SOLUSDT")
    assert refused.value.field == "symbol"


async def test_timeout_after_accept_is_resolved_without_a_second_order(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    fake.timeout_after_accept(1, path="/api/v3/order", delay=5.0)
    order = await place(services, user, account)
    filled = await until(services, user, order["id"], "FILLED", timeout=30)
    assert filled["filled_quantity"] == "0.01"
    assert len([o for o in fake.orders(API_KEY) if o.client_order_id == f"tw{order['id']}"]) == 1


async def test_server_error_before_accepting_is_resent_with_the_same_client_id(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    fake.server_error_next(1, status=503, path="/api/v3/order")
    order = await place(services, user, account)
    await until(services, user, order["id"], "FILLED", timeout=30)
    sent = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order"]
    assert {r.params.get("newClientOrderId") for r in sent} == {f"tw{order['id']}"}
    assert len(fake.orders(API_KEY)) == 1


async def test_throttling_pauses_the_account_and_tells_the_user(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    notices: list[UserEvent] = []
    services.bus.subscribe_user(user, lambda e: notices.append(e) if e.type == "NOTICE" else None)
    fake.rate_limit_next(1, path="/api/v3/order", retry_after=1)
    order = await place(services, user, account)
    await until(services, user, order["id"], "FILLED", timeout=30)
    assert notices and notices[0].data["code"] == "VENUE_THROTTLED" and notices[0].data["retry_after"] == 1
    assert len(fake.orders(API_KEY)) == 1


async def test_restart_between_send_and_acknowledgement(
    testnet: tuple[Services, str, str], fake: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the exchange accepted the order but before anything told us the outcome."""
    services, user, account = testnet

    async def silent_stream(*_args: object) -> None:
        await asyncio.Event().wait()  # the user-data stream reports nothing before the "crash"

    monkeypatch.setattr(BinanceTestnetVenue, "watch", silent_stream)
    fake.timeout_after_accept(1, path="/api/v3/order", delay=30.0)
    order = await place(services, user, account)
    async with asyncio.timeout(10):
        while not fake.orders(API_KEY):
            await asyncio.sleep(0.02)
    await services.engine.stop()  # "kill": the answer never arrives
    assert (await services.orders.get(user, order["id"]))["status"] == "PENDING"
    monkeypatch.undo()
    await services.engine.start()  # recovery asks the exchange by client order id
    recovered = await until(services, user, order["id"], "FILLED")
    assert recovered["filled_quantity"] == "0.01"
    assert len(fake.orders(API_KEY)) == 1


async def test_orders_placed_outside_tradewind_are_imported(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    outside = ccxt_async.binance(ccxt_config(fake, API_KEY, SECRET))
    try:
        price = float(Decimal(str(fake.last_price("BTCUSDT"))) - 2000)
        await outside.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"newClientOrderId": "manual-1"})
    finally:
        await outside.close()
    services.engine.external.reconcile_all()  # what the periodic job does
    async with asyncio.timeout(10):
        while not (rows := await services.orders.list_orders(user, status="open", account_id=account)):
            await asyncio.sleep(0.05)
    assert rows[0]["client_order_id"] == "manual-1" and rows[0]["status"] == "OPEN"


async def test_an_order_whose_submit_job_was_lost_is_sent_by_the_next_reconciliation(
    testnet: tuple[Services, str, str], fake: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored PENDING, never sent, its job gone (a database error while marking it sent, a request cancelled before
    # the hand-over): until now only a restart sent it.
    services, user, account = testnet
    router = services.orders.queue
    monkeypatch.setattr(services.orders, "queue", type("Lost", (), {"submit": lambda self, c: None})())
    order = await place(services, user, account)
    monkeypatch.setattr(services.orders, "queue", router)
    external = services.engine.external
    assert external is not None
    await asyncio.sleep(0.1)
    assert (await services.orders.get(user, order["id"]))["status"] == "PENDING" and fake.orders(API_KEY) == []
    monkeypatch.setattr(exchange_worker, "UNSENT_AFTER_MS", 0)
    external.reconcile_all()  # what the periodic job does
    await until(services, user, order["id"], "FILLED")
    [at_exchange] = fake.orders(API_KEY)
    assert at_exchange.client_order_id == f"tw{order['id']}"
    external.reconcile_all()  # again: sent once, never twice
    await asyncio.sleep(0.3)
    assert len(fake.orders(API_KEY)) == 1


async def test_two_users_with_two_keys_never_see_each_others_orders(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, alice, alice_account = testnet
    order = await place(services, alice, alice_account)
    await until(services, alice, order["id"], "FILLED")
    bob = (await services.auth.register(unique_email(), PASSWORD)).id
    assert await services.orders.list_orders(bob) == []
    with pytest.raises(Exception, match="not found"):
        await services.orders.get(bob, order["id"])


async def resting_limit(services: Services, user: str, account: str, fake: FakeBinance) -> dict[str, Any]:
    far_below = (fake.last_price("BTCUSDT") / 2).quantize(Decimal("0.01"))
    order = await place(services, user, account, type="LIMIT", price=str(far_below))
    return await until(services, user, order["id"], "OPEN")


async def test_an_open_order_the_venue_forgot_expires_and_the_account_can_then_be_removed(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    order = await resting_limit(services, user, account, fake)
    fake.wipe()  # Spot Testnet was reset
    assert services.engine.external is not None
    services.engine.external.reconcile_all()  # what the periodic job does
    expired = await until(services, user, order["id"], "EXPIRED")
    assert "no longer knows this order" in expired["reject_reason"]
    await services.accounts.delete_account(user, account)  # no open order is left to block it


async def test_cancelling_an_order_the_venue_forgot_completes(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    order = await resting_limit(services, user, account, fake)
    fake.wipe()
    await services.orders.cancel(user, order["id"])
    canceled = await until(services, user, order["id"], "CANCELED")
    assert "no longer knows this order" in canceled["reject_reason"]


async def test_a_worker_that_cannot_start_keeps_its_jobs_and_retries(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    external = services.engine.external
    assert external is not None
    await external.idle()
    await external.close_account(account)  # as after a restart: the next job starts a new worker
    fake.requests.clear()
    fake.server_error_next(2, status=503, path="/api/v3/exchangeInfo")  # the testnet is down while rules load
    order = await place(services, user, account)
    filled = await until(services, user, order["id"], "FILLED", timeout=30)
    assert filled["filled_quantity"] == "0.01"
    loads = [r.status for r in fake.requests if r.path == "/api/v3/exchangeInfo"]
    assert loads[:3] == [503, 503, 200]
    assert len(fake.orders(API_KEY)) == 1  # sent once


async def test_a_revoked_key_marks_the_account_stops_retries_and_tells_the_user(
    testnet: tuple[Services, str, str], fake: FakeBinance
) -> None:
    services, user, account = testnet
    notices: list[UserEvent] = []
    services.bus.subscribe_user(user, lambda e: notices.append(e) if e.type == "NOTICE" else None)
    resting = await resting_limit(services, user, account, fake)
    fake.revoke_key(API_KEY)
    refused = await place(services, user, account)
    rejected = await until(services, user, refused["id"], "REJECTED")
    assert "Invalid API-key" in rejected["reject_reason"]
    assert [n.data["code"] for n in notices] == ["EXCHANGE_KEY_REJECTED"]
    [view] = [a for a in await services.accounts.list_for_user(user) if a.id == account]
    assert view.needs_new_key
    with pytest.raises(Conflict) as blocked:  # nothing more is sent
        await place(services, user, account)
    assert blocked.value.code == "ACCOUNT_KEY_REJECTED"
    fake.requests.clear()
    assert services.engine.external is not None
    services.engine.external.reconcile_all()
    await services.orders.cancel(user, resting["id"])  # completes here: the venue cannot be asked
    canceled = await until(services, user, resting["id"], "CANCELED")
    assert "API key is refused or unreadable" in canceled["reject_reason"]
    await asyncio.sleep(0.2)
    assert fake.requests == []  # retries stopped
    await services.accounts.delete_account(user, account)


async def test_an_exchange_write_for_an_account_outside_the_held_partitions_commits_nothing(
    testnet: tuple[Services, str, str],
) -> None:
    """CLUSTER mode: each exchange write is fenced by the lease of its own account's partition, not only by the
    leases held: a worker that still runs for a partition given up or lost writes nothing."""
    services, user, account_id = testnet
    executor = services.engine.external_executor
    assert executor is not None
    account = await services.db.read(lambda s: account_repo.get(s, account_id))
    assert account is not None
    partitions = 4
    mine = partition_of(account_id, partitions)
    store = LeaseStore(services.db, "this-replica", 60_000)
    scope = PartitionScope(partitions)
    other = await store.acquire(partition_lease_name((mine + 1) % partitions))
    assert other is not None
    scope.add((mine + 1) % partitions, other)
    executor.scope = scope
    try:
        with pytest.raises(LeaseLost):
            await executor.notice(account, "TEST", "not this replica's account", 0)
        held = await store.acquire(partition_lease_name(mine))
        assert held is not None
        scope.add(mine, held)
        await executor.notice(account, "TEST", "this replica's account", 0)
    finally:
        executor.scope = None
    logged = await services.db.read(lambda s: events.since(s, user, 0))
    assert [json.loads(e.payload)["message"] for e in logged if e.type == "NOTICE"] == ["this replica's account"]
