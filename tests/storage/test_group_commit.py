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


def group_writer(db: Database, calls: list[list[str]]) -> object:
    """A group's own writer: all its users in one transaction of its own (not through `db.write`)."""

    async def write_all(items: list[tuple[str, str]]) -> list[str]:
        calls.append([user_id for user_id, _ in items])
        with Session(db.engine) as session:
            for user_id, email in items:
                session.add(User(id=user_id, email=email, password_hash="h", created_at=now_ms()))
            session.commit()
        return [user_id for user_id, _ in items]

    return write_all


async def test_units_sharing_a_group_writer_are_written_by_one_call_of_it_in_order(db: Database) -> None:
    transactions = count_transactions(db)
    calls: list[list[str]] = []
    writer = group_writer(db, calls)
    units = [(*add_user(f"w{n}@example.com"), f"w{n}@example.com") for n in range(5)]
    results = await asyncio.gather(
        *(db.grouped.write(unit, None, (writer, (user_id, email))) for user_id, unit, email in units)  # type: ignore[arg-type]
    )
    assert results == [user_id for user_id, _, _ in units]
    assert calls == [results] and transactions[0] == 0  # the writer stored the group; no session transaction
    assert db.run_sync(lambda s: len(s.exec(select(User.id)).all())) == 5


async def test_a_group_with_a_unit_that_has_no_group_writer_takes_the_session(db: Database) -> None:
    transactions = count_transactions(db)
    calls: list[list[str]] = []
    writer = group_writer(db, calls)
    units = [(*add_user(f"m{n}@example.com"), f"m{n}@example.com") for n in range(3)]
    together = [(writer, (user_id, email)) for user_id, _, email in units[:2]] + [None]
    results = await asyncio.gather(
        *(db.grouped.write(unit, None, form) for (_, unit, _), form in zip(units, together, strict=True))  # type: ignore[arg-type]
    )
    assert results == [user_id for user_id, _, _ in units]
    assert calls == [] and transactions[0] == 1


async def test_a_failing_group_writer_leaves_the_units_to_be_written_one_by_one(db: Database) -> None:
    db.run_sync(lambda s: s.add(User(id=new_id(), email="taken@example.com", password_hash="h", created_at=0)))
    calls: list[list[str]] = []
    writer = group_writer(db, calls)
    emails = ["x0@example.com", "taken@example.com", "x2@example.com"]
    units = [(*add_user(email), email) for email in emails]
    outcomes = await asyncio.gather(
        *(db.grouped.write(unit, None, (writer, (user_id, email))) for user_id, unit, email in units),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert len(calls) == 1  # the group's call failed whole (unique email), then each unit went on its own
    assert isinstance(outcomes[1], IntegrityError)
    assert [outcomes[0], outcomes[2]] == [units[0][0], units[2][0]]
    stored = db.run_sync(lambda s: sorted(s.exec(select(User.email)).all()))
    assert stored == sorted(["taken@example.com", "x0@example.com", "x2@example.com"])


async def test_two_groups_stored_by_their_writer_may_be_in_flight_at_once_and_a_third_waits(db: Database) -> None:
    sent: list[list[str]] = []
    release = asyncio.Event()

    async def slow_writer(items: list[str]) -> list[str]:
        sent.append(items)
        await release.wait()  # the statement is still running (a commit, a lock wait)
        return items

    async def turns_until(condition: object, turns: int = 200) -> None:
        for _ in range(turns):
            if condition():  # type: ignore[operator]
                return
            await asyncio.sleep(0)

    def group(name: str) -> list[asyncio.Task[str]]:
        return [
            asyncio.create_task(db.grouped.write(lambda _s: None, None, (slow_writer, f"{name}{n}")))  # type: ignore[arg-type]
            for n in range(3)
        ]

    first = group("a")
    await turns_until(lambda: len(sent) == 1)
    second = group("b")
    await turns_until(lambda: len(sent) == 2)
    third = group("c")
    await turns_until(lambda: len(sent) == 3)

    assert sent == [["a0", "a1", "a2"], ["b0", "b1", "b2"]]  # sent while the first is in flight; the third waits
    assert db.grouped.busy and not any(task.done() for task in first + second + third)
    release.set()
    assert await asyncio.gather(*first, *second, *third) == [f"{name}{n}" for name in "abc" for n in range(3)]
    assert sent[2] == ["c0", "c1", "c2"] and not db.grouped.busy
