"""PostgreSQL's hot single-statement reads awaited on the event loop (storage/read_pool.py): outside a transaction,
named for the replica, a dead idle connection replaced unseen, a lost one read again on another, one pool per event
loop, closed on stop. SQLite reads stay inline."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from sqlalchemy import func, literal_column, select

import storage.read_pool
from storage.db import Database, is_transient
from storage.driver_reads import DriverRead, ReadPlan
from tests.factories import count_calls

pytestmark = pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="the pool is PostgreSQL's")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

BACKEND = DriverRead(select(func.pg_backend_pid().label("pid")))
# Equal only when the SELECT is its own transaction: a BEGIN sent before it would start the transaction earlier.
OWN_TRANSACTION = DriverRead(select((func.statement_timestamp() == func.transaction_timestamp()).label("own")))
NAMED = DriverRead(select(literal_column("current_setting('application_name')").label("name")))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, application_name="tw-replica-test")
    yield database
    await database.aclose()


async def pid_of(db: Database) -> int:
    return int((await db.fetch(BACKEND))[0].pid)


def end_session(pid: int) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_a_read_is_awaited_on_the_loop_not_handed_to_the_reader_threads(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_threads(*_: Any) -> Any:
        raise AssertionError("handed to the reader threads")

    monkeypatch.setattr(db, "fetch_in", no_threads)

    assert await pid_of(db) > 0


async def test_each_read_is_its_own_transaction_and_the_connection_is_named_for_the_replica(db: Database) -> None:
    assert [row.own for row in await db.fetch(OWN_TRANSACTION)] == [True]
    assert [row.name for row in await db.fetch(NAMED)] == ["tw-replica-test"]


async def test_a_connection_that_died_while_idle_is_replaced_before_the_read(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.read_pool, "MAX_CONNECTIONS", 1)  # the next read gets the same connection
    first = await pid_of(db)
    end_session(first)
    monkeypatch.setattr(storage.read_pool, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    lost_reads: list[bool] = []
    original = DriverRead.rows_async

    async def counted(read: DriverRead, *args: Any) -> list[Any]:
        try:
            return await original(read, *args)
        except Exception:
            lost_reads.append(True)
            raise

    monkeypatch.setattr(DriverRead, "rows_async", counted)

    second = await pid_of(db)

    assert second != first
    assert lost_reads == []  # the ping found it: the read itself never met the dead connection


async def test_a_connection_lost_under_a_read_is_read_again_on_another(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.read_pool, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no ping: the read meets it
    monkeypatch.setattr(storage.read_pool, "MAX_CONNECTIONS", 1)  # the next read gets the same connection
    first = await pid_of(db)
    end_session(first)

    second = await pid_of(db)

    assert second != first


async def test_a_pool_per_event_loop_each_closed_on_its_own_loop(database_url: str) -> None:
    db = Database(database_url)
    assert db.async_reads is not None
    await pid_of(db)

    def in_another_loop() -> tuple[int, bool]:
        async def read_and_close() -> tuple[int, bool]:
            pid = await pid_of(db)
            pools = dict(db.async_reads._pools)  # type: ignore[union-attr]
            await db.async_reads.close()  # type: ignore[union-attr]
            return pid, all(pool.closed for pool in pools.values() if pool is not here)

        return asyncio.run(read_and_close())

    here = db.async_reads._pools[asyncio.get_running_loop()]
    pid, closed = await asyncio.to_thread(in_another_loop)

    assert pid > 0 and closed
    assert not here.closed  # the other loop closed its own pool only
    await db.aclose()
    assert here.closed


async def test_a_plans_reads_share_one_connection(db: Database) -> None:
    def two_reads() -> ReadPlan[tuple[int, int]]:
        first = yield BACKEND, {}
        second = yield BACKEND, {}
        return first[0].pid, second[0].pid

    await asyncio.gather(*(pid_of(db) for _ in range(8)))  # several connections in the pool now

    first, second = await db.fetch_plan(two_reads)

    assert first == second


async def test_an_unreachable_database_fails_a_read_soon_and_the_next_read_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage.read_pool, "WAIT_SECONDS", 0.3)
    db = Database("postgresql+psycopg://postgres@127.0.0.1:9/nowhere")  # nothing listens on port 9
    assert db.async_reads is not None
    opened = count_calls(monkeypatch, db.async_reads, "_new_pool")
    try:
        for _ in range(2):
            with pytest.raises(PoolTimeout):
                await asyncio.wait_for(db.fetch(BACKEND), timeout=5)
        assert opened == [1, 1]  # the failure was not kept: the second read tried to connect again
        assert not db.async_reads.open_on_a_running_loop()
        await asyncio.sleep(0.05)
        assert not [t for t in asyncio.all_tasks() if "psycopg_pool" in _source_of(t)]  # none left trying to connect
    finally:
        await db.aclose()


def _source_of(task: asyncio.Task[Any]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return code.co_filename if code is not None else ""


async def test_no_connection_free_in_time_is_a_transient_error(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg_pool raises PoolTimeout as it is (nothing was sent): intake and the engine must retry it, not take it
    for a refused write (an engine write taken as failed for good rejected accepted orders)."""
    monkeypatch.setattr(storage.read_pool, "MAX_CONNECTIONS", 1)
    monkeypatch.setattr(storage.read_pool, "WAIT_SECONDS", 0.2)
    assert db.async_reads is not None
    busy = asyncio.create_task(db.async_reads.write_once("SELECT pg_sleep(1)", ()))
    await asyncio.sleep(0.1)  # the only connection is taken
    with pytest.raises(PoolTimeout) as waited:
        await db.async_reads.write_once("SELECT 1", ())
    assert is_transient(waited.value)
    await busy
