"""PostgreSQL: a transaction's events numbered, stored and committed in one message
(storage/repositories/numbered_commit.py): seqs gap-free and in order per user, staged order rows in the same
transaction, nothing stored when a user is missing, the plain way when ORM objects wait for the flush, and no
deadlock between transactions numbering the same users in any order."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.ids import new_id
from storage.db import create_db_engine
from storage.models import Event, Order, User
from storage.repositories import events, numbered_commit, writes
from tests.storage.test_client_order_ids import order_row, user_account_rows

pytestmark = pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="the message is PostgreSQL's")


@pytest.fixture
def engine(database_url: str) -> Any:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many commits took the one-message way."""
    counted: list[int] = []
    original = numbered_commit.number_store_commit

    def counting(*args: Any) -> dict[str, int]:
        counted.append(1)
        return original(*args)

    monkeypatch.setattr(numbered_commit, "number_store_commit", counting)
    return counted


def log(engine: Engine, user_id: str) -> tuple[list[tuple[int, str]], int]:
    with Session(engine) as session:
        rows = session.execute(select(Event.seq, Event.payload).where(Event.user_id == user_id).order_by(Event.seq))
        last = session.execute(select(User.last_seq).where(User.id == user_id)).scalar_one()
        return [(seq, payload) for seq, payload in rows], last


def stage_left(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT count(*) FROM tw_event_stage").scalar_one())


def test_events_are_numbered_in_order_per_user_and_committed_with_the_staged_orders(
    engine: Engine, calls: list[int]
) -> None:
    (first, account), (second, _) = user_account_rows(engine), user_account_rows(engine)
    order = order_row(first, account)
    seen: list[tuple[str, int]] = []
    for round_ in range(2):
        with Session(engine) as session:
            if round_ == 0:
                writes.stage_order(session, order)
            for n, user_id in enumerate([first, second, first, first, second]):
                events.append(
                    session,
                    user_id,
                    "ORDER_UPDATE",
                    f"{round_}-{n}",
                    7,
                    on_seq=lambda s, u=user_id: seen.append((u, s)),
                )
            session.commit()

    assert calls == [1, 1]
    assert log(engine, first) == ([(1, "0-0"), (2, "0-2"), (3, "0-3"), (4, "1-0"), (5, "1-2"), (6, "1-3")], 6)
    assert log(engine, second) == ([(1, "0-1"), (2, "0-4"), (3, "1-1"), (4, "1-4")], 4)
    assert seen[:5] == [(first, 1), (second, 1), (first, 2), (first, 3), (second, 2)]
    with Session(engine) as session:
        assert session.get(Order, order["id"]) is not None
    assert stage_left(engine) == 0


def test_an_event_of_a_missing_user_stores_nothing_of_the_transaction(engine: Engine, calls: list[int]) -> None:
    user_id, account = user_account_rows(engine)
    order = order_row(user_id, account)
    with Session(engine) as session:
        writes.stage_order(session, order)
        events.append(session, user_id, "ORDER_UPDATE", "kept?", 7)
        events.append(session, new_id(), "ORDER_UPDATE", "nobody's", 7)
        with pytest.raises(IntegrityError):
            session.commit()

    assert calls == [1]
    assert log(engine, user_id) == ([], 0)
    with Session(engine) as session:
        assert session.get(Order, order["id"]) is None
        session.rollback()
    with Session(engine) as session:  # the same pooled connection goes on: its stage was emptied by the rollback
        events.append(session, user_id, "ORDER_UPDATE", "next", 8)
        session.commit()
    assert log(engine, user_id) == ([(1, "next")], 1)


def test_a_staged_order_that_fails_stores_none_of_the_events(engine: Engine, calls: list[int]) -> None:
    """The staged orders go out before the message commits: a refused order row leaves no event behind."""
    user_id, account = user_account_rows(engine)
    order = order_row(user_id, account)
    with Session(engine) as session:
        writes.stage_order(session, order)
        session.commit()
    with Session(engine) as session:
        writes.stage_order(session, order)  # the same primary key again
        events.append(session, user_id, "ORDER_UPDATE", "lost with its order", 7)
        with pytest.raises(IntegrityError):
            session.commit()
    assert log(engine, user_id) == ([], 0)


def test_orm_objects_waiting_for_the_flush_take_the_plain_way(engine: Engine, calls: list[int]) -> None:
    user_id, _ = user_account_rows(engine)
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        user.email = f"changed-{user_id}@example.com"  # dirty: flushed after before_commit
        events.append(session, user_id, "NOTICE", "plain", 7)
        session.commit()

    assert calls == []
    assert log(engine, user_id) == ([(1, "plain")], 1)
    with Session(engine) as session:
        assert session.get(User, user_id).email == f"changed-{user_id}@example.com"  # type: ignore[union-attr]


def test_transactions_numbering_the_same_users_in_any_order_neither_deadlock_nor_leave_gaps(
    engine: Engine, calls: list[int]
) -> None:
    users = [user_account_rows(engine)[0] for _ in range(6)]
    failures: list[BaseException] = []

    def work(order: list[str]) -> None:
        try:
            for _ in range(40):
                with Session(engine) as session:
                    for user_id in order:
                        events.append(session, user_id, "ORDER_UPDATE", "x", 7)
                    session.commit()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(o,)) for o in (users, users[::-1], users[2:] + users[:2])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert len(calls) == 120
    with Session(engine) as session:
        for user_id in users:
            seqs = session.execute(
                select(func.count(), func.min(Event.seq), func.max(Event.seq)).where(Event.user_id == user_id)
            ).one()
            assert tuple(seqs) == (120, 1, 120)
            assert session.execute(select(User.last_seq).where(User.id == user_id)).scalar_one() == 120
