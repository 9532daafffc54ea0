"""Intake's journal entry (app/intake_journal.py): concurrent orders share one write — on PostgreSQL one statement
awaited on the loop (no writer-thread transaction), on SQLite one session transaction — and every order is filled
with its user's events gap-free."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import select

from app.orders import OrderRequest
from app.services import Services
from storage.models import Event
from storage.repositories import journal
from tests.factories import PASSWORD, count_calls, unique_email

POSTGRES = os.environ.get("TW_TEST_DB") == "postgres"


async def test_concurrent_orders_share_one_write_and_the_engine_fills_them(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [(await services.auth.register(unique_email(), PASSWORD)).id for _ in range(3)]
    request = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")
    for user_id in users:  # each user's account and the symbol's rules read once: the six below take no await first
        await services.orders.submit(user_id, request)
    statements = count_calls(monkeypatch, journal, "orders_with_events")
    lone = count_calls(monkeypatch, journal, "order_with_event")
    transactions = count_calls(monkeypatch, services.db, "write")

    submitted = await asyncio.gather(*(services.orders.submit(user_id, request) for user_id in users * 2))

    assert all(s.created and s.order["status"] == "PENDING" for s in submitted)
    if POSTGRES:  # one statement for all six, no writer-thread transaction
        assert (statements, lone, transactions) == ([1], [], [])
    else:  # SQLite: one session transaction, inline
        assert (statements, lone, transactions) == ([], [], [1])
    await services.engine.start()  # only now: the engine's own writes are not intake's
    await asyncio.wait_for(services.engine.drain(), 10)
    for user_id, placed in zip(users * 2, submitted, strict=True):
        assert (await services.orders.get(user_id, placed.order["id"]))["status"] == "FILLED"
    for user_id in users:
        seqs = services.db.run_sync(
            lambda s, u=user_id: list(s.execute(select(Event.seq).where(Event.user_id == u).order_by(Event.seq)))
        )
        assert [seq for (seq,) in seqs] == list(range(1, len(seqs) + 1))  # gap-free
