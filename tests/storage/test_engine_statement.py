"""An engine batch's outputs as one PostgreSQL statement (storage/repositories/engine_statement.py): the orders'
updates, fills, position and balance upserts and the users' next events stored together or not at all, money exact,
and the paper executor's writes taking this path, not a writer thread's session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

import storage.read_pool
from app.execution.records import EXECUTION_COLUMNS
from app.ids import id_floor, new_id
from app.orders import OrderRequest
from app.services import Services
from storage.db import Database
from storage.models import Balance, Event, Fill, Order, Position, User
from storage.repositories import engine_statement, engine_writes, journal
from tests.factories import PASSWORD, count_calls, unique_email
from tests.storage.test_client_order_ids import order_row, user_account_rows

pytestmark = pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="the statement is PostgreSQL's")

EXACT = Decimal("0.123456789012345678")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.aclose()


async def pending_order(db: Database, user_id: str, account_id: str, seq: int = 1) -> str:
    row = order_row(user_id, account_id, status="PENDING", filled_quantity=Decimal(0), filled_quote=Decimal(0))
    assert await journal.order_with_event(db, row, user_id, "ORDER_UPDATE", '{"n":0}', 1) == seq
    return str(row["id"])


def filled(order_id: str, fee: Decimal = EXACT) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(EXECUTION_COLUMNS)
    values.update(id=order_id, status="FILLED", filled_quantity=Decimal("0.01"), filled_quote=EXACT, fee=fee)
    values.update(fee_asset="BTC", sent_at=7, updated_at=8)
    return values


def fill(order_id: str, user_id: str, account_id: str, price: Any = EXACT) -> dict[str, Any]:
    return {
        "id": new_id(),
        "order_id": order_id,
        "user_id": user_id,
        "account_id": account_id,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "price": price,
        "quantity": Decimal("0.01"),
        "fee": EXACT,
        "fee_asset": "BTC",
        "liquidity": "TAKER",
        "venue_trade_id": None,
        "ts": 9,
    }


def position(account_id: str, quantity: Decimal) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "symbol": "BTCUSDT",
        "quantity": quantity,
        "cost": EXACT,
        "realized_pnl": Decimal(0),
    }


def stored(db: Database, user_id: str, account_id: str) -> dict[str, Any]:
    def read(session: Any) -> dict[str, Any]:
        return {
            "order": session.execute(
                select(Order.status, Order.filled_quote, Order.fee, Order.fee_asset, Order.sent_at).where(
                    Order.user_id == user_id
                )
            ).all(),
            "fills": session.execute(select(Fill.price, Fill.fee).where(Fill.user_id == user_id)).all(),
            "positions": session.execute(
                select(Position.quantity, Position.cost).where(Position.account_id == account_id)
            ).all(),
            "balances": session.execute(
                select(Balance.asset, Balance.free, Balance.locked).where(Balance.account_id == account_id)
            ).all(),
            "events": session.execute(
                select(Event.seq, Event.type, Event.payload).where(Event.user_id == user_id).order_by(Event.seq)
            ).all(),
            "last_seq": session.execute(select(User.last_seq).where(User.id == user_id)).scalar_one(),
        }

    return db.run_sync(read)


async def test_a_batchs_outputs_are_stored_together_with_the_users_next_seqs(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    order_id = await pending_order(db, user_id, account_id)
    balance = {"account_id": account_id, "asset": "USDT", "free": EXACT, "locked": Decimal(0)}
    events = [(user_id, "FILL", '{"n":1}', 9), (user_id, "ORDER_UPDATE", '{"n":2}', 9)]

    seqs = await engine_statement.write_outputs(
        db, [filled(order_id)], EXECUTION_COLUMNS, [fill(order_id, user_id, account_id)], [position(account_id, EXACT)],
        [balance], events,
    )  # fmt: skip

    assert seqs == [2, 3]  # after intake's event, in the batch's order
    after = stored(db, user_id, account_id)
    assert after["order"] == [("FILLED", EXACT, EXACT, "BTC", 7)]  # money exact to 1e-18
    assert after["fills"] == [(EXACT, EXACT)]
    assert after["positions"] == [(EXACT, EXACT)]
    assert after["balances"] == [("USDT", EXACT, Decimal(0))]
    assert [(seq, type_) for seq, type_, _ in after["events"]] == [
        (1, "ORDER_UPDATE"),
        (2, "FILL"),
        (3, "ORDER_UPDATE"),
    ]
    assert after["last_seq"] == 3

    # A second batch: the position and the balance are updated in place (the upserts), no fill this time.
    balance["free"] = Decimal(1)
    seqs = await engine_statement.write_outputs(
        db, [], EXECUTION_COLUMNS, [], [position(account_id, Decimal(2))], [balance], [(user_id, "X", "{}", 10)]
    )
    assert seqs == [4]
    again = stored(db, user_id, account_id)
    assert again["positions"] == [(Decimal(2), EXACT)] and again["balances"] == [("USDT", Decimal(1), Decimal(0))]
    assert len(again["fills"]) == 1 and again["last_seq"] == 4


async def test_an_event_for_a_user_who_is_not_there_stores_nothing(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    order_id = await pending_order(db, user_id, account_id)
    before = stored(db, user_id, account_id)
    with pytest.raises(DBAPIError):
        await engine_statement.write_outputs(
            db, [filled(order_id)], EXECUTION_COLUMNS, [fill(order_id, user_id, account_id)], [], [],
            [(user_id, "FILL", "{}", 9), (new_id(), "ORDER_UPDATE", "{}", 9)],
        )  # fmt: skip
    assert stored(db, user_id, account_id) == before  # not the update, not the fill, no number taken


async def test_money_must_be_decimal(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    order_id = await pending_order(db, user_id, account_id)
    before = stored(db, user_id, account_id)
    with pytest.raises(TypeError, match="Decimal"):
        await engine_statement.write_outputs(
            db, [filled(order_id)], EXECUTION_COLUMNS, [fill(order_id, user_id, account_id, price=0.5)], [], [],
            [(user_id, "FILL", "{}", 9)],
        )  # fmt: skip
    assert stored(db, user_id, account_id) == before


async def test_a_batch_finds_its_orders_by_key_among_a_few_thousand(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set-returning function is estimated at 100 rows; against a few thousand orders the planner took a hash join
    over every order for each batch. The orders to update must be found through the primary key."""
    user_id, account_id = user_account_rows(db.engine)
    order_id = await pending_order(db, user_id, account_id)
    with db.engine.begin() as connection:  # a few thousand orders, and statistics that know it
        connection.execute(
            text(
                "INSERT INTO orders (id, user_id, account_id, client_order_id, symbol, side, type, status, "
                "filled_quantity, filled_quote, fee, external, created_at, updated_at) "
                "SELECT left(:user, 10) || lpad(g::text, 16, '0'), :user, :account, "
                "'tw' || left(:user, 10) || lpad(g::text, 16, '0'), 'BTCUSDT', 'BUY', 'MARKET', 'FILLED', 0, 0, 0, "
                "false, 1, 1 FROM generate_series(1, 5000) AS g"
            ),
            {"user": user_id, "account": account_id},
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE orders")
    sent: list[tuple[str, Any]] = []
    assert db.async_reads is not None
    write_once = db.async_reads.write_once

    async def noting(sql: str, params: Any, **options: Any) -> Any:
        sent.append((sql, params))
        return await write_once(sql, params, **options)

    monkeypatch.setattr(db.async_reads, "write_once", noting)
    events = [(user_id, "X", "{}", 9)]
    await engine_statement.write_outputs(db, [filled(order_id)], EXECUTION_COLUMNS, [], [], [], events)

    ((sql, params),) = sent
    with db.engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}", params))
    assert "Index Scan using orders_pkey on orders" in plan and "Seq Scan on orders" not in plan, plan
    assert stored(db, user_id, account_id)["order"].count(("FILLED", EXACT, EXACT, "BTC", 7)) == 1


async def test_a_batch_is_planned_for_the_table_as_it_is_now(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a prepared statement: psycopg prepares a statement on its fifth run, and PostgreSQL then keeps a generic
    plan made for the table of that moment (a handful of orders: a scan of every order) until statistics change."""
    monkeypatch.setattr(storage.read_pool, "MAX_CONNECTIONS", 1)  # every statement below on the same connection
    user_id, account_id = user_account_rows(db.engine)
    for n in range(8):
        order_id = await pending_order(db, user_id, account_id, seq=1 + 2 * n)
        await engine_statement.write_outputs(
            db, [filled(order_id)], EXECUTION_COLUMNS, [], [], [], [(user_id, "X", "{}", 9)]
        )
    assert db.async_reads is not None
    prepared = await db.async_reads.write_once(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ("WITH given%",)
    )
    assert prepared == [(0,)]
    assert [status for status, *_ in stored(db, user_id, account_id)["order"]] == ["FILLED"] * 8


async def test_the_paper_executor_writes_its_batches_as_one_statement(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.engine.start()
    user_id = (await services.auth.register(unique_email(), PASSWORD)).id
    statements = count_calls(monkeypatch, engine_statement, "write_outputs")
    transactions = count_calls(monkeypatch, services.db, "write")

    submitted = [
        await services.orders.submit(user_id, OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001"))
        for _ in range(3)
    ]
    await asyncio.wait_for(services.engine.drain(), 10)

    assert statements and transactions == []  # no writer-thread session for intake or the engine
    for order in submitted:
        assert (await services.orders.get(user_id, order.order["id"]))["status"] == "FILLED"
    events = services.db.run_sync(
        lambda session: session.execute(select(Event.seq).where(Event.user_id == user_id).order_by(Event.seq)).all()
    )
    assert [seq for (seq,) in events] == list(range(1, len(events) + 1))  # gap-free across intake and the engine


async def test_a_batch_stores_its_token_with_its_outputs_and_prunes_older_tokens(db: Database) -> None:
    """A retry after a lost connection asks for the token (storage/repositories/engine_writes.py): it must be
    committed with the outputs or not at all, and the same token twice stores nothing the second time."""
    user_id, account_id = user_account_rows(db.engine)
    order_id = await pending_order(db, user_id, account_id)
    old, token = id_floor(1_000), new_id()
    db.run_sync(lambda session: engine_writes.store(session, old, id_floor(0)))  # an old token
    events = [(user_id, "X", "{}", 9)]
    await engine_statement.write_outputs(
        db, [filled(order_id)], EXECUTION_COLUMNS, [], [], [], events, token=(token, id_floor(2_000))
    )
    assert await db.read(lambda s: engine_writes.committed(s, token))
    assert not await db.read(lambda s: engine_writes.committed(s, old))  # pruned below the floor
    before = stored(db, user_id, account_id)
    with pytest.raises(DBAPIError):  # written again: the token's key refuses the whole statement
        await engine_statement.write_outputs(
            db, [filled(order_id)], EXECUTION_COLUMNS, [], [], [], events, token=(token, id_floor(2_000))
        )
    assert stored(db, user_id, account_id) == before
