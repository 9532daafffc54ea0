"""Intake's journal entries as one PostgreSQL statement (storage/repositories/journal.py), a lone order's and a whole
group's: the orders and their users' next events stored together or not at all, the seqs gap-free and in the
entries' order per user, money exact, a duplicate client order id refused as intake expects (IntegrityError), and
intake's orders taking these paths, not a writer thread."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.orders import OrderRequest
from app.services import Services
from storage.db import Database
from storage.models import Event, Order, User
from storage.repositories import journal
from tests.factories import PASSWORD, count_calls, unique_email
from tests.storage.test_client_order_ids import order_row, user_account_rows
from tests.storage.test_read_pool import end_session, pid_of

pytestmark = pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="the statement is PostgreSQL's")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.aclose()


def stored(db: Database, user_id: str) -> tuple[list[Any], list[Any], int]:
    """(the user's orders, their events, the user's last seq)."""

    def read(session: Any) -> tuple[list[Any], list[Any], int]:
        orders = list(session.execute(select(Order.id, Order.quantity).where(Order.user_id == user_id)))
        events = list(
            session.execute(
                select(Event.seq, Event.type, Event.payload).where(Event.user_id == user_id).order_by(Event.seq)
            )
        )
        return orders, events, session.execute(select(User.last_seq).where(User.id == user_id)).scalar_one()

    return db.run_sync(read)


async def test_the_order_and_its_event_are_stored_together_with_the_users_next_seq(db: Database) -> None:
    assert journal.available(db)
    user_id, account_id = user_account_rows(db.engine)
    first, second = order_row(user_id, account_id), order_row(user_id, account_id, quantity=Decimal("0.123456789"))

    assert await journal.order_with_event(db, first, user_id, "ORDER_UPDATE", '{"n":1}', 5) == 1
    assert await journal.order_with_event(db, second, user_id, "ORDER_UPDATE", '{"n":2}', 6) == 2

    orders, events, last_seq = stored(db, user_id)
    assert sorted(orders) == sorted([(first["id"], Decimal("0.01")), (second["id"], Decimal("0.123456789"))])
    assert events == [(1, "ORDER_UPDATE", '{"n":1}'), (2, "ORDER_UPDATE", '{"n":2}')]
    assert last_seq == 2


async def test_a_duplicate_client_order_id_stores_nothing_and_takes_no_number(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    await journal.order_with_event(db, order_row(user_id, account_id, "bot-1"), user_id, "ORDER_UPDATE", "{}", 1)

    with pytest.raises(IntegrityError):  # what intake's race handling catches
        await journal.order_with_event(db, order_row(user_id, account_id, "bot-1"), user_id, "ORDER_UPDATE", "{}", 2)

    orders, events, last_seq = stored(db, user_id)
    assert (len(orders), len(events), last_seq) == (1, 1, 1)  # the failed statement left no row and no gap


async def test_an_order_for_a_user_who_is_not_there_stores_nothing(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    with pytest.raises(IntegrityError):  # the seq is NULL when no user row was numbered: the statement fails whole
        await journal.order_with_event(db, order_row(user_id, account_id), "nobody", "ORDER_UPDATE", "{}", 1)
    assert stored(db, user_id) == ([], [], 0)


async def test_money_must_be_decimal(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    with pytest.raises(TypeError, match="Decimal"):
        await journal.order_with_event(db, order_row(user_id, account_id, quantity=0.01), user_id, "X", "{}", 1)
    assert stored(db, user_id) == ([], [], 0)


async def test_intake_writes_a_lone_order_as_one_statement_and_the_engine_fills_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.engine.start()
    user_id = (await services.auth.register(unique_email(), PASSWORD)).id
    statements = count_calls(monkeypatch, journal, "order_with_event")
    transactions = count_calls(monkeypatch, services.db, "write")

    submitted = await services.orders.submit(user_id, OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001"))

    assert submitted.created and submitted.order["status"] == "PENDING"
    assert statements == [1] and transactions == []  # acknowledged after the statement, no writer-thread transaction
    await asyncio.wait_for(services.engine.drain(), 10)
    assert (await services.orders.get(user_id, submitted.order["id"]))["status"] == "FILLED"
    _, events, last_seq = stored(services.db, user_id)
    assert [seq for seq, _, _ in events] == list(range(1, last_seq + 1))  # gap-free: intake's event, the engine's
    assert last_seq >= 2


async def test_a_lone_order_whose_connection_was_lost_is_retried_and_stored_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = (await services.auth.register(unique_email(), PASSWORD)).id
    request = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")
    await services.orders.submit(user_id, request)  # the pool's connection, used just now: not pinged before reuse
    end_session(await pid_of(services.db))  # the server ends it (a failover, a peer ending a frozen session)
    statements = count_calls(monkeypatch, journal, "order_with_event")

    submitted = await services.orders.submit(user_id, request)

    assert statements == [1, 1]  # the statement failed on the lost connection, then ran again on a new one
    assert submitted.created and submitted.order["status"] == "PENDING"
    orders, events, last_seq = stored(services.db, user_id)
    assert submitted.order["id"] in [order_id for order_id, _ in orders] and len(orders) == 2
    assert [seq for seq, _, _ in events] == [1, 2] and last_seq == 2


def entry(row: dict[str, Any], user_id: str, n: int) -> tuple[dict[str, Any], str, str, str, int]:
    return row, user_id, "ORDER_UPDATE", f'{{"n":{n}}}', n


async def test_a_group_of_orders_is_stored_with_each_users_next_seqs_in_the_entries_order(db: Database) -> None:
    (alice, alice_account), (bob, bob_account) = user_account_rows(db.engine), user_account_rows(db.engine)
    await journal.order_with_event(db, order_row(bob, bob_account), bob, "ORDER_UPDATE", '{"n":0}', 0)  # bob: seq 1
    rows = [
        order_row(alice, alice_account, quantity=Decimal("0.000000000000000001")),
        order_row(bob, bob_account, "bot-7", price=Decimal("65000.12345678")),
        order_row(alice, alice_account, status="PENDING", external=True),
        order_row(bob, bob_account),
        order_row(alice, alice_account),
    ]
    owners = [alice, bob, alice, bob, alice]

    seqs = await journal.orders_with_events(
        db, [entry(row, owner, n) for n, (row, owner) in enumerate(zip(rows, owners, strict=True), 1)]
    )

    assert seqs == [1, 2, 2, 3, 3]  # each user's next numbers, in the entries' order
    alice_orders, alice_events, alice_last = stored(db, alice)
    assert sorted(alice_orders) == sorted(
        [
            (rows[0]["id"], Decimal("0.000000000000000001")),
            (rows[2]["id"], Decimal("0.01")),
            (rows[4]["id"], Decimal("0.01")),
        ]
    )
    assert alice_events == [
        (1, "ORDER_UPDATE", '{"n":1}'),
        (2, "ORDER_UPDATE", '{"n":3}'),
        (3, "ORDER_UPDATE", '{"n":5}'),
    ]
    _, bob_events, bob_last = stored(db, bob)
    assert [seq for seq, *_ in bob_events] == [1, 2, 3] and (alice_last, bob_last) == (3, 3)

    def read_back(session: Any) -> Any:
        return session.get(Order, rows[1]["id"])

    order = db.run_sync(read_back)  # every column as given: the JSON carried the row whole
    assert (order.client_order_id, order.price, order.status, order.external) == (
        "bot-7",
        Decimal("65000.12345678"),
        rows[1]["status"],
        False,
    )
    assert db.run_sync(lambda s: s.get(Order, rows[2]["id"]).external) is True


async def test_a_group_with_a_duplicate_client_order_id_stores_nothing_and_takes_no_number(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    await journal.order_with_event(db, order_row(user_id, account_id, "bot-1"), user_id, "ORDER_UPDATE", "{}", 1)
    group = [
        entry(order_row(user_id, account_id), user_id, 2),
        entry(order_row(user_id, account_id, "bot-1"), user_id, 3),
    ]

    with pytest.raises(IntegrityError):  # the group commit then writes the entries one by one
        await journal.orders_with_events(db, group)

    orders, events, last_seq = stored(db, user_id)
    assert (len(orders), len(events), last_seq) == (1, 1, 1)


async def test_a_group_with_a_user_who_is_not_there_stores_nothing(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    group = [entry(order_row(user_id, account_id), user_id, 1), entry(order_row(user_id, account_id), "nobody", 2)]
    with pytest.raises(IntegrityError):  # a NULL seq for the missing user fails the whole statement
        await journal.orders_with_events(db, group)
    assert stored(db, user_id) == ([], [], 0)


async def test_a_groups_money_must_be_decimal(db: Database) -> None:
    user_id, account_id = user_account_rows(db.engine)
    group = [
        entry(order_row(user_id, account_id), user_id, 1),
        entry(order_row(user_id, account_id, fee=0.1), user_id, 2),
    ]
    with pytest.raises(TypeError, match="Decimal"):
        await journal.orders_with_events(db, group)
    assert stored(db, user_id) == ([], [], 0)
