"""Write-behind under load (app/execution/write_behind.py): the paper executor holds a batch's outputs while more
work is on its way and writes several batches in one transaction; idle, it writes at once; nothing is lost or
doubled on the way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.execution import write_behind
from app.orders import OrderRequest
from app.services import Services
from storage.repositories import engine_statement
from storage.repositories import events as event_log
from tests.app.execution.test_paper_engine import FlakyWrites, check_gap_free_log
from tests.factories import PASSWORD, unique_email

MARKET_BUY = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")


async def trader(services: Services) -> str:
    """A user whose account the executor has loaded already, so that a batch of theirs reads nothing first."""
    user_id = (await services.auth.register(unique_email(), PASSWORD)).id
    await services.orders.submit(user_id, MARKET_BUY)
    await asyncio.wait_for(services.engine.drain(), 5)
    return user_id


@contextmanager
def filled_by_commit() -> Iterator[list[set[str]]]:
    """The ids of the orders each commit stores a FILLED ORDER_UPDATE for, commit by commit: a session's commit,
    or PostgreSQL's one statement for an engine batch (storage/repositories/engine_statement.py)."""
    commits: list[set[str]] = []

    def record(events: list[tuple[str, str]]) -> None:  # (type, payload)
        updates = [json.loads(payload) for type_, payload in events if type_ == "ORDER_UPDATE"]
        commits.append({update["id"] for update in updates if update["status"] == "FILLED"})

    def committing(session: Session) -> None:  # before the event log numbers (and takes) the pending events
        record([(p.type, p.payload) for p in session.info.get(event_log.PENDING_KEY, [])])

    original = engine_statement.write_outputs

    async def one_statement(*args: Any, **options: Any) -> list[int]:
        record([(type_, payload) for _, type_, payload, _ in args[-1]])
        return await original(*args, **options)

    event.listen(Session, "before_commit", committing, insert=True)
    engine_statement.write_outputs = one_statement  # type: ignore[assignment]
    try:
        yield commits
    finally:
        event.remove(Session, "before_commit", committing)
        engine_statement.write_outputs = original  # type: ignore[assignment]


async def first_held_while_second_gathers(services: Services, user_id: str) -> tuple[str, str]:
    first = (await services.orders.submit(user_id, MARKET_BUY)).order["id"]  # stored and queued for the executor
    # Gathering for intake's next group commit while the executor runs the first: its command is on the way.
    second = (await services.orders.submit(user_id, MARKET_BUY)).order["id"]
    return first, second


async def status_and_fills(services: Services, user_id: str, order_id: str) -> tuple[str, int]:
    order = await services.orders.get(user_id, order_id)
    return order["status"], len(order["fills"])


async def test_under_load_the_outputs_of_two_batches_are_written_in_one_transaction(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "HOLD_SECONDS", 60.0)  # a slow machine's pause must not write the first alone
    user_id = await trader(running)
    published: list[Any] = []
    running.bus.subscribe_user(user_id, published.append)
    with filled_by_commit() as commits:
        first, second = await first_held_while_second_gathers(running, user_id)
        await running.engine.drain()
    assert {first, second} in commits  # one transaction for both orders' fills
    assert {first} not in commits  # the first was not written on its own
    for order_id in (first, second):
        assert await status_and_fills(running, user_id, order_id) == ("FILLED", 1)
    filled = [e.data["id"] for e in published if e.type == "ORDER_UPDATE" and e.data["status"] == "FILLED"]
    assert filled == [first, second]  # published after that commit, in order
    await check_gap_free_log(running, user_id)


async def test_a_lone_order_is_written_at_once(running: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    user_id = await trader(running)
    monkeypatch.setattr(write_behind, "HOLD_SECONDS", 3600.0)  # were it held, only a later batch would write it
    order_id = (await running.orders.submit(user_id, MARKET_BUY)).order["id"]
    await asyncio.wait_for(running.engine.drain(), 5)
    assert await status_and_fills(running, user_id, order_id) == ("FILLED", 1)


async def test_held_outputs_are_written_when_no_more_work_comes(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "HOLD_SECONDS", 0.5)
    user_id = await trader(running)
    order_id = (await running.orders.submit(user_id, MARKET_BUY)).order["id"]
    await running.db.grouped.write(lambda session: None)  # gathering while the executor runs the order; no order
    assert running.engine.paper_executor.held is not None
    assert await status_and_fills(running, user_id, order_id) == ("PENDING", 0)
    # PENDING in the journal, but its command is not done: the sweeper leaves it alone (nothing doubled).
    assert await running.engine.sweep_pending(older_than_ms=0) == 0
    await asyncio.wait_for(running.engine.drain(), 5)  # the reminder writes it
    assert running.engine.paper_executor.held is None
    assert await status_and_fills(running, user_id, order_id) == ("FILLED", 1)
    await check_gap_free_log(running, user_id)


async def test_a_held_write_that_fails_replays_every_command_since_the_last_write(
    running: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "HOLD_SECONDS", 60.0)
    user_id = await trader(running)
    # On SQLite the write is a unit of a group commit, which tries a failed group once more unit by unit.
    failures = 2 if running.db.inline else 1
    with filled_by_commit() as commits:
        flaky = FlakyWrites(monkeypatch, IntegrityError("INSERT", {}, Exception("constraint")), failures=failures)
        first, second = await first_held_while_second_gathers(running, user_id)
        await running.engine.drain()
    assert flaky.failed == failures
    assert {first} in commits and {second} in commits  # replayed one by one after the shared write failed
    for order_id in (first, second):
        assert await status_and_fills(running, user_id, order_id) == ("FILLED", 1)
    await check_gap_free_log(running, user_id)


async def test_stopping_writes_what_is_held(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(write_behind, "HOLD_SECONDS", 3600.0)
    await services.engine.start()
    user_id = await trader(services)
    order_id = (await services.orders.submit(user_id, MARKET_BUY)).order["id"]
    await services.db.grouped.write(lambda session: None)
    assert services.engine.paper_executor.held is not None
    await services.engine.stop()
    assert await status_and_fills(services, user_id, order_id) == ("FILLED", 1)
