"""Group commit: concurrent write units share transactions; a failing unit fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.ids import new_id, now_ms
from storage.db import Database
from storage.group_commit import MAX_GATHER_TURNS
from storage.models import User


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def add_user(email: str) -> tuple[str, object]:
    user_id = new_id()

    def unit(session: Session) -> str:
        session.add(User(id=user_id, email=email, password_hash="h", created_at=now_ms()))
        session.flush()
        return user_id

    return user_id, unit


def count_transactions(db: Database) -> list[int]:
    """Count `db.write` calls (one transaction each) into the returned one-item list."""
    transactions = [0]
    write = db.write

    async def counting_write(work):  # type: ignore[no-untyped-def]
        transactions[0] += 1
        return await write(work)

    db.write = counting_write  # type: ignore[method-assign]
    return transactions


async def test_concurrent_units_commit_together_and_each_gets_its_result(db: Database) -> None:
    transactions = count_transactions(db)
    units = [add_user(f"u{n}@example.com") for n in range(200)]
    results = await asyncio.gather(*(db.grouped.write(unit) for _, unit in units))  # type: ignore[arg-type]
    assert results == [user_id for user_id, _ in units]
    assert transactions[0] < 20  # grouped, not one transaction per unit
    stored = db.run_sync(lambda s: set(s.exec(select(User.id)).all()))
    assert stored == set(results)


async def test_units_arriving_a_loop_turn_or_two_apart_share_one_transaction(db: Database) -> None:
    # Requests read from the same socket batch reach the journal a turn or two apart (their tasks start on the
    # next turn, the body is awaited): the group waits two turns for them instead of committing the first alone.
    transactions = count_transactions(db)

    async def after_turns(turns: int, unit: object) -> str:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await db.grouped.write(unit)  # type: ignore[arg-type]

    units = [add_user(f"t{n}@example.com") for n in range(3)]
    results = await asyncio.gather(*(after_turns(turns, unit) for turns, (_, unit) in enumerate(units)))
    assert results == [user_id for user_id, _ in units]
    assert transactions[0] == 1


async def after_turns(db: Database, turns: int, unit: object) -> str:
    for _ in range(turns):
        await asyncio.sleep(0)
    return await db.grouped.write(unit)  # type: ignore[arg-type]


async def test_a_group_keeps_gathering_while_every_turn_brings_more(db: Database) -> None:
    # Under load requests keep arriving turn after turn: the group takes them all instead of committing after two.
    transactions = count_transactions(db)
    units = [add_user(f"s{n}@example.com") for n in range(9)]
    results = await asyncio.gather(*(after_turns(db, turns, unit) for turns, (_, unit) in enumerate(units)))
    assert results == [user_id for user_id, _ in units]
    assert transactions[0] == 1


async def test_a_quiet_turn_ends_the_gathering(db: Database) -> None:
    # A unit that comes after the others have stopped arriving is not waited for: it gets its own transaction.
    transactions = count_transactions(db)
    units = [add_user(f"q{n}@example.com") for n in range(3)]
    arrivals = [0, 1, 2 + MAX_GATHER_TURNS + 5]
    results = await asyncio.gather(
        *(after_turns(db, turns, unit) for turns, (_, unit) in zip(arrivals, units, strict=True))
    )
    assert results == [user_id for user_id, _ in units]
    assert transactions[0] == 2


async def test_a_failing_unit_fails_alone_and_the_others_commit(db: Database) -> None:
    db.run_sync(lambda s: s.add(User(id=new_id(), email="taken@example.com", password_hash="h", created_at=0)))
    good = [add_user(f"g{n}@example.com") for n in range(10)]
    _, clash = add_user("taken@example.com")  # unique email violated
    outcomes = await asyncio.gather(
        *(db.grouped.write(unit) for _, unit in good[:5]),  # type: ignore[arg-type]
        db.grouped.write(clash),  # type: ignore[arg-type]
        *(db.grouped.write(unit) for _, unit in good[5:]),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert isinstance(outcomes[5], IntegrityError)
    assert [o for n, o in enumerate(outcomes) if n != 5] == [user_id for user_id, _ in good]
    emails = db.run_sync(lambda s: sorted(s.exec(select(User.email)).all()))
    assert emails == sorted(["taken@example.com", *(f"g{n}@example.com" for n in range(10))])


def alone_form(db: Database, user_id: str, email: str, ran: list[str]) -> object:
    """A unit's `alone` form: the same user, written in a transaction of its own (not through `db.write`)."""

    async def alone() -> str:
        ran.append(user_id)
        with Session(db.engine) as session:
            session.add(User(id=user_id, email=email, password_hash="h", created_at=now_ms()))
            session.commit()
        return user_id

    return alone


async def test_a_unit_alone_in_its_group_is_written_by_its_alone_form(db: Database) -> None:
    transactions = count_transactions(db)
    ran: list[str] = []
    user_id, unit = add_user("lone@example.com")
    result = await db.grouped.write(unit, alone_form(db, user_id, "lone@example.com", ran))  # type: ignore[arg-type]
    assert result == user_id
    assert ran == [user_id] and transactions[0] == 0  # no session transaction: the alone form wrote it
    assert db.run_sync(lambda s: s.exec(select(User.email)).all()) == ["lone@example.com"]


async def test_units_with_alone_forms_that_arrive_together_share_the_session_transaction(db: Database) -> None:
    transactions = count_transactions(db)
    ran: list[str] = []
    units = [(*add_user(f"a{n}@example.com"), f"a{n}@example.com") for n in range(5)]
    results = await asyncio.gather(
        *(db.grouped.write(unit, alone_form(db, user_id, email, ran)) for user_id, unit, email in units)  # type: ignore[arg-type]
    )
    assert results == [user_id for user_id, _, _ in units]
    assert ran == [] and transactions[0] == 1


async def test_a_failing_alone_form_fails_its_caller_only(db: Database) -> None:
    db.run_sync(lambda s: s.add(User(id=new_id(), email="taken@example.com", password_hash="h", created_at=0)))
    user_id, unit = add_user("taken@example.com")
    with pytest.raises(IntegrityError):
        await db.grouped.write(unit, alone_form(db, user_id, "taken@example.com", []))  # type: ignore[arg-type]
    after_id, after = add_user("after@example.com")
    assert await db.grouped.write(after) == after_id  # type: ignore[arg-type]  # the writer goes on
