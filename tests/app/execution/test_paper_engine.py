"""The execution engine on the paper venue: order types, triggers, brackets, recovery, and the event log."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, col, select

from app.cluster.leases import LeaseStore
from app.cluster.partitions import partition_lease_name, partition_of
from app.cluster.scope import PartitionScope
from app.errors import ValidationFailed
from app.events import UserEvent
from app.execution import changes as batch_writes
from app.execution import write_behind
from app.orders import OrderRequest
from app.services import Services
from storage.models import Event
from storage.repositories import events as event_log
from tests.factories import PASSWORD, trade, unique_email


async def new_user(services: Services) -> str:
    return (await services.auth.register(unique_email(), PASSWORD)).id


async def submit(services: Services, user_id: str, **fields: Any) -> dict[str, Any]:
    request = OrderRequest(**{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", **fields})
    order = (await services.orders.submit(user_id, request)).order
    await services.engine.drain()
    return await services.orders.get(user_id, order["id"])


def book(services: Services) -> tuple[Decimal, Decimal]:
    depth = services.market.depth("BTCUSDT")
    assert depth is not None
    return depth.bids[0][0], depth.asks[0][0]


async def print_trade(services: Services, price: Decimal, qty: str = "5") -> None:
    services.market.apply_trade(trade("BTCUSDT", str(price), qty))  # type: ignore[arg-type]
    await services.engine.drain()


async def test_ioc_and_fok_expire_what_they_cannot_fill(running: Services) -> None:
    user = await new_user(running)
    bid, _ = book(running)
    ioc = await submit(running, user, type="LIMIT", price=str(bid), time_in_force="IOC")
    assert ioc["status"] == "EXPIRED" and ioc["filled_quantity"] == "0"
    fok = await submit(running, user, type="LIMIT", price=str(bid), time_in_force="FOK")
    assert fok["status"] == "EXPIRED"
    balances = await running.portfolio.balances(user, None)
    assert [(b.asset, b.free, b.locked) for b in balances] == [("USDT", Decimal(10000), Decimal(0))]


async def test_events_are_gap_free_per_user_and_match_the_log(running: Services) -> None:
    alice, bob = await new_user(running), await new_user(running)
    seen: dict[str, list[UserEvent]] = {alice: [], bob: []}
    running.bus.subscribe_user(alice, seen[alice].append)
    running.bus.subscribe_user(bob, seen[bob].append)
    bid, _ = book(running)
    await submit(running, alice)
    await submit(running, bob, type="LIMIT", price=str(bid - 10))
    await submit(running, alice, side="SELL", quantity="0.005")
    for user, events in seen.items():
        seqs = [e.seq for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        assert all(e.user_id == user for e in events)
        stored = running.db.run_sync(
            lambda s, user=user: list(s.exec(select(Event).where(Event.user_id == user).order_by(col(Event.seq))))
        )
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert [(e.type, json.loads(e.payload)) for e in stored][-len(events) :] == [(e.type, e.data) for e in events]
    alice_orders = {e.data["id"] for e in seen[alice] if e.type == "ORDER_UPDATE"}
    bob_orders = {e.data["id"] for e in seen[bob] if e.type == "ORDER_UPDATE"}
    assert alice_orders.isdisjoint(bob_orders)


class FlakyWrites:
    """Makes the next `failures` batch writes of the engine fail with `error` (fault injection), then writes:
    either form of the write (the session's, or PostgreSQL's one statement)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: Exception, failures: int) -> None:
        self.error, self.left, self.failed = error, failures, 0
        self.original, self.original_statement = batch_writes.write, batch_writes.write_statement
        monkeypatch.setattr(batch_writes, "write", self.write)
        monkeypatch.setattr(batch_writes, "write_statement", self.write_statement)

    def _fail_now(self) -> None:
        if self.left > 0:
            self.left -= 1
            self.failed += 1
            raise self.error

    def write(self, session: Session, changes: Any, token: Any = None) -> None:
        self._fail_now()
        self.original(session, changes, token)

    async def write_statement(self, db: Any, changes: Any, token: Any) -> None:
        self._fail_now()
        await self.original_statement(db, changes, token)


class UnansweredCommits(FlakyWrites):
    """The next `failures` batch writes commit, then their connection is lost before the answer arrives: the
    engine sees the error of a lost connection and cannot know the write committed (PostgreSQL)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        lost = DBAPIError("COMMIT", {}, Exception("server closed the connection"), connection_invalidated=True)
        super().__init__(monkeypatch, lost, failures)

    def write(self, session: Session, changes: Any, token: Any = None) -> None:
        self.original(session, changes, token)
        session.commit()  # the session's commit is the caller's; committed here so that only the answer is lost
        self._fail_now()

    async def write_statement(self, db: Any, changes: Any, token: Any) -> None:
        await self.original_statement(db, changes, token)
        self._fail_now()


async def submit_many(services: Services, user_id: str, count: int) -> list[str]:
    request = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")
    return [(await services.orders.submit(user_id, request)).order["id"] for _ in range(count)]


async def test_a_transient_database_error_retries_the_batch_instead_of_rejecting_it(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await new_user(running)
    flaky = FlakyWrites(monkeypatch, OperationalError("UPDATE", {}, Exception("database is locked")), failures=2)
    ids = await submit_many(running, user, 5)
    await running.engine.drain()
    assert flaky.failed == 2
    for order_id in ids:
        assert (await running.orders.get(user, order_id))["status"] == "FILLED"


async def test_a_write_whose_commit_went_unanswered_is_not_written_twice(
    running: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if running.db.is_sqlite:
        pytest.skip("a SQLite commit either happened or raised: no lost connection leaves it unknown")
    user = await new_user(running)
    bid, _ = book(running)
    lost = UnansweredCommits(monkeypatch, failures=1)
    request = OrderRequest("BTCUSDT", "BUY", "LIMIT", quantity="0.001", price=str(bid - 100))
    ids = [(await running.orders.submit(user, request)).order["id"] for _ in range(3)]
    await running.engine.drain()
    assert lost.failed == 1
    for order_id in ids:
        assert (await running.orders.get(user, order_id))["status"] == "OPEN"

    def statuses(session: Session) -> list[tuple[str, str]]:
        rows = session.exec(select(Event).where(Event.user_id == user, Event.type == "ORDER_UPDATE"))
        return sorted((json.loads(e.payload)["id"], json.loads(e.payload)["status"]) for e in rows)

    # Written again, the accepted orders' events would be in the log twice (OPEN, OPEN), under new numbers.
    assert running.db.run_sync(statuses) == sorted([(i, "OPEN") for i in ids] + [(i, "PENDING") for i in ids])
    await check_gap_free_log(running, user)
    # Found committed by its token, not replayed from rebuilt memory (which would run a batch's fills again).
    assert "had committed" in caplog.text and "replaying" not in caplog.text


async def test_a_batch_that_fails_to_commit_is_replayed_one_by_one_and_loses_nothing(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await new_user(running)
    flaky = FlakyWrites(monkeypatch, IntegrityError("INSERT", {}, Exception("constraint")), failures=1)
    ids = await submit_many(running, user, 5)
    await running.engine.drain()
    assert flaky.failed == 1
    orders = [await running.orders.get(user, order_id) for order_id in ids]
    assert [o["status"] for o in orders] == ["FILLED"] * 5
    assert all(len(o["fills"]) == 1 for o in orders)  # executed exactly once each
    await check_gap_free_log(running, user)


async def test_on_sqlite_a_batch_commits_together_with_the_intake_it_meets(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer, the loop: an engine batch joins the intake group being gathered, so the pages both
    touch (the orders' leaves, the users' event numbers) are written by one commit instead of two."""
    if not running.db.inline:
        pytest.skip("PostgreSQL writes engine batches on its writer pool, beside the intake groups")
    monkeypatch.setattr(write_behind, "HOLD_SECONDS", 0.0)  # written at once, not held for the next batch
    user = await new_user(running)
    statuses_by_commit: list[set[str]] = []

    def committing(session: Session) -> None:  # runs before the event log numbers (and takes) the pending events
        pending = session.info.get(event_log.PENDING_KEY, [])
        statuses_by_commit.append({json.loads(p.payload).get("status") for p in pending if p.type == "ORDER_UPDATE"})

    event.listen(Session, "before_commit", committing, insert=True)
    try:
        request = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")
        first = (await running.orders.submit(user, request)).order  # stored and queued: the engine takes it next
        second = (await running.orders.submit(user, request)).order  # gathered while the engine's batch waits
        await running.engine.drain()
    finally:
        event.remove(Session, "before_commit", committing)
    assert {"PENDING", "FILLED"} in statuses_by_commit  # the second order accepted, the first filled: one commit
    for order in (first, second):
        assert (await running.orders.get(user, order["id"]))["status"] == "FILLED"
    await check_gap_free_log(running, user)


async def check_gap_free_log(services: Services, user_id: str) -> None:
    def load(session: Session) -> list[int]:
        return [e.seq for e in session.exec(select(Event).where(Event.user_id == user_id).order_by(col(Event.seq)))]

    seqs = services.db.run_sync(load)
    assert seqs == list(range(1, len(seqs) + 1))


async def test_the_sweeper_requeues_a_pending_order_whose_command_was_lost(running: Services) -> None:
    user = await new_user(running)
    router = running.orders.queue
    running.orders.queue = type("Lost", (), {"submit": lambda self, c: None, "cancel": router.cancel})()
    lost = (await running.orders.submit(user, OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.01"))).order
    running.orders.queue = router
    await running.engine.drain()
    assert (await running.orders.get(user, lost["id"]))["status"] == "PENDING"
    assert await running.engine.sweep_pending(older_than_ms=0) == 1
    await running.engine.drain()
    assert (await running.orders.get(user, lost["id"]))["status"] == "FILLED"
    assert await running.engine.sweep_pending(older_than_ms=0) == 0  # nothing left, nothing doubled


async def test_the_sweeper_requeues_a_cancel_whose_command_was_lost(running: Services) -> None:
    # A cancel command that failed twice is dropped; its request stays stored on the order, still open.
    user = await new_user(running)
    bid, _ = book(running)
    resting = await submit(running, user, type="LIMIT", price=str(bid - 100))
    router = running.orders.queue
    running.orders.queue = type("Lost", (), {"submit": router.submit, "cancel": lambda self, c: None})()
    try:
        await running.orders.cancel(user, resting["id"])
    finally:
        running.orders.queue = router
    await running.engine.drain()
    assert (await running.orders.get(user, resting["id"]))["status"] == "OPEN"
    assert await running.engine.sweep_pending(older_than_ms=0) == 1
    await running.engine.drain()
    assert (await running.orders.get(user, resting["id"]))["status"] == "CANCELED"
    assert await running.engine.sweep_pending(older_than_ms=0) == 0  # nothing left, nothing doubled
    await check_gap_free_log(running, user)


async def test_at_most_200_open_orders_per_account_and_symbol(running: Services) -> None:
    user = await new_user(running)
    bid, _ = book(running)
    resting = OrderRequest("BTCUSDT", "BUY", "LIMIT", quantity="0.001", price=str((bid / 2).quantize(Decimal("0.01"))))
    for _ in range(200):
        await running.orders.submit(user, resting)
    with pytest.raises(ValidationFailed) as refused:
        await running.orders.submit(user, resting)
    assert refused.value.code == "TOO_MANY_OPEN_ORDERS" and "200" in refused.value.message
    other_symbol = OrderRequest("ETHUSDT", "BUY", "LIMIT", quantity="0.1", price="100")
    await running.orders.submit(user, other_symbol)  # the limit is per symbol
    await running.orders.submit(user, OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001"))  # never rests
    await running.engine.drain()
    first = (await running.orders.list_orders(user, status="open", symbol="BTCUSDT", limit=1))[0]
    await running.orders.cancel(user, first["id"])
    await running.engine.drain()
    await running.orders.submit(user, resting)  # a slot is free again


@pytest.mark.python_only
async def test_a_command_that_breaks_in_memory_rejects_only_its_own_order(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await new_user(running)
    recorder = running.engine.paper_executor.recorder
    record = recorder.record

    def record_or_break(order: Any, *args: Any, **kwargs: Any) -> Any:
        if order.quantity == Decimal("0.002"):
            raise ValueError("a bug in one order's recording")
        return record(order, *args, **kwargs)

    monkeypatch.setattr(recorder, "record", record_or_break)
    ids = []
    for quantity in ("0.001", "0.002", "0.003"):  # one batch or several: either way only the middle one breaks
        request = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity=quantity)
        ids.append((await running.orders.submit(user, request)).order["id"])
    await running.engine.drain()
    statuses = [(await running.orders.get(user, order_id))["status"] for order_id in ids]
    assert statuses == ["FILLED", "REJECTED", "FILLED"]
    assert (await running.orders.get(user, ids[1]))["reject_reason"] == "internal error; nothing executed"
    await check_gap_free_log(running, user)


async def test_a_partition_dropped_before_its_rescope_gets_no_fill_written(running: Services) -> None:
    """CLUSTER mode: a lost partition leaves the scope at once, but memory keeps its resting orders until the
    Rescope runs between batches. A public trade in that window must not fill them for this replica (the new owner
    does): the fence no longer checks that partition's lease, so the batch itself refuses accounts outside it."""
    paper = running.engine.paper_executor
    user = await new_user(running)
    bid, _ = book(running)
    resting = await submit(running, user, type="LIMIT", price=str(bid - 10))
    assert resting["status"] == "OPEN"
    partitions = 4
    partition = partition_of(resting["account_id"], partitions)
    lease = await LeaseStore(running.db, "this-replica", 60_000).acquire(partition_lease_name(partition))
    assert lease is not None
    paper.scope = PartitionScope(partitions)
    paper.scope.add(partition, lease)
    await print_trade(running, bid + 1000)  # above the order: no fill, and memory still holds the order
    assert resting["id"] in paper.orders

    paper.scope.drop(partition)  # lost: what ClusterExecution._give_up does before the Rescope
    await print_trade(running, bid - 20)  # crosses the resting order
    order = await running.orders.get(user, resting["id"])
    assert order["status"] == "OPEN" and order["filled_quantity"] == "0"  # nothing written for the lost partition
    assert resting["id"] not in paper.orders  # memory rebuilt without the partition
