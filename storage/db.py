"""Engine and sessions. Sessions are synchronous: on SQLite they run inline on the event loop (the only writer, so
no busy retries); on PostgreSQL async callers hop onto small thread pools so the loop never blocks on the network,
except the API's hot reads, awaited on the loop (storage/read_pool.py). See `Database`."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from psycopg_pool import PoolTimeout
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Session

from storage.driver_reads import DriverRead, DriverReader, ReadPlan, single
from storage.group_commit import GroupCommit
from storage.read_pool import AsyncReadPool
from storage.repositories.numbered_commit import create_stage

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000

# Python's sqlite3 module binds int, float and str directly but sends every other parameter, None included, through
# its adapter protocol, and a type with no adapter is the slow case there (it looks for `__adapt__`/`__conform__`):
# ~0.2 µs per NULL, and an order row binds about fifteen. A registered adapter is found in one dict lookup, so NULLs
# bind at about half the cost (measured: docs/orders.md, "Speed"). It returns None: still bound as NULL.
sqlite3.register_adapter(type(None), lambda value: value)

PING_AFTER_IDLE_SECONDS = 1.0
_LAST_USED = "tradewind_last_used"


def create_db_engine(url: str, *, application_name: str | None = None) -> Engine:
    """An engine with the project's connection settings (SQLite: WAL, NORMAL sync, busy timeout, FKs).
    PostgreSQL: `application_name` names every session in `pg_stat_activity` (a cluster replica's id, so the others
    can end the sessions of one that stopped: storage/repositories/leases.py `end_sessions_of_dead_members`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    connect_args = {"application_name": application_name} if application_name else {}
    engine = create_engine(url, pool_size=10, max_overflow=5, connect_args=connect_args)

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """SQLAlchemy's pool_pre_ping (the dialect's own ping), for connections idle longer than
        PING_AFTER_IDLE_SECONDS only. Pinging before every transaction cost a round trip each time: under load one
        of the ~6 a group commit waits for, on a connection the pool had handed out milliseconds before. One that
        sat idle (a server restart, an idle timeout) is still found dead and replaced before use."""
        last_used = record.info.get(_LAST_USED)
        if last_used is not None and time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure: this connection is not usable; the pool opens another
            raise DisconnectionError(f"connection failed its ping: {error}") from error

    event.listen(engine, "connect", create_stage)  # storage/repositories/numbered_commit.py
    event.listen(engine, "checkout", ping_if_idle)
    event.listen(engine, "checkin", _note_use)
    return engine


def _note_use(_dbapi_connection: Any, record: Any) -> None:
    record.info[_LAST_USED] = time.monotonic()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Runs session work for async callers.

    SQLite runs it inline, on the event loop's thread: a local file answers in microseconds, while a hop to a
    thread pool cost ~0.8 ms of CPU per call on these VMs (wake-ups, GIL hand-offs) — more than the query. The loop
    being the only writer also serialises writes with no busy retries. PostgreSQL is a network round trip, so its
    work runs on thread pools (`write` on 8 writer threads, `read` and `fetch_in` on 4 reader threads) and the loop
    stays free; the API's hot reads (`fetch`, `fetch_plan`) are awaited on the loop instead (storage/read_pool.py).
    """

    def __init__(self, url: str, *, inline: bool | None = None, application_name: str | None = None) -> None:
        self.url = url
        self.engine = create_db_engine(url, application_name=application_name)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.inline = self.is_sqlite if inline is None else inline
        self._writer = ThreadPoolExecutor(max_workers=1 if self.is_sqlite else 8, thread_name_prefix="db-write")
        self._reader = ThreadPoolExecutor(max_workers=4, thread_name_prefix="db-read")
        self.grouped = GroupCommit(self)
        # PostgreSQL: `fetch` awaits its read on the event loop (storage/read_pool.py); `fetch_in` keeps the threads.
        self.async_reads = (
            None if self.inline or self.is_sqlite else AsyncReadPool(self.engine, application_name=application_name)
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def run_sync(self, work: Callable[[Session], T]) -> T:
        with self.session() as session:
            return work(session)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction (inline on SQLite, else on the writer pool)."""
        if self.inline:
            return self.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(self.run_sync, work))

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run read-only `work(session)` (inline on SQLite, else on the reader pool)."""
        if self.inline:
            return self.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, functools.partial(self._read_again_if_lost, work))

    async def fetch(self, read: DriverRead, **params: Any) -> list[Any]:
        """The rows of one driver-level read (storage/driver_reads.py): no Session, no ORM. Inline on SQLite; on
        PostgreSQL awaited on the event loop, the API's reads (a burst of intake's lookups uses `fetch_in`)."""
        if self.async_reads is not None:
            return await self.async_reads.run(lambda: single(read, params))
        return await self.fetch_in(lambda reader: reader.rows(read, **params))

    async def fetch_plan(self, plan: Callable[[], ReadPlan[T]]) -> T:
        """The answer of a fresh `plan()` (several driver-level reads, storage/driver_reads.py) on one connection:
        inline on SQLite, awaited on the event loop on PostgreSQL, as `fetch`."""
        if self.async_reads is not None:
            return await self.async_reads.run(plan)
        return await self.fetch_in(lambda reader: reader.run(plan()))

    async def fetch_in(self, work: Callable[[DriverReader], T]) -> T:
        """Run `work` with driver-level reads on one pooled connection: inline on SQLite, else on the reader pool,
        once more on another connection if this one was found lost (reads are safe to repeat)."""
        if self.inline:
            return self._with_reader(work)
        loop = asyncio.get_running_loop()
        again = functools.partial(_again_if_lost, functools.partial(self._with_reader, work))
        return await loop.run_in_executor(self._reader, again)

    def _with_reader(self, work: Callable[[DriverReader], T]) -> T:
        connection = self.engine.raw_connection()
        try:
            if self.is_sqlite:  # sqlite3 begins no transaction for a SELECT: nothing to end either
                return work(DriverReader(connection, self.engine.dialect))
            # PostgreSQL: each statement in its own implicit transaction, as READ COMMITTED would see it anyway.
            # Otherwise psycopg sends a BEGIN before the first statement and the pool a ROLLBACK on return: three
            # round trips for a one-statement read instead of one (under load each waits its turn for the GIL).
            connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            try:
                return work(DriverReader(connection, self.engine.dialect))
            finally:
                _end_autocommit(connection)
        finally:
            connection.close()  # back to the pool

    def _read_again_if_lost(self, work: Callable[[Session], T]) -> T:
        """A read is safe to run twice: one whose connection was found lost (the pool has dropped it) runs once
        more on another, so the caller does not see a connection the pool did not ping (`ping_if_idle`)."""
        return _again_if_lost(functools.partial(self.run_sync, work))

    async def aclose(self) -> None:
        """Close what belongs to the running event loop (its pool of awaited reads), then everything else."""
        if self.async_reads is not None:
            await self.async_reads.close()
        self.close()

    def close(self) -> None:
        if self.async_reads is not None and self.async_reads.open_on_a_running_loop():
            # Loudly, not a hang: psycopg's pool keeps worker tasks on its loop until it is closed there.
            raise RuntimeError("the awaited reads' pool is still open on a running event loop: await aclose()")
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self.engine.dispose()


def _end_autocommit(connection: PoolProxiedConnection) -> None:
    """Back to the driver's default for the pool's other users; a connection that cannot be (lost, broken) is
    dropped from the pool instead."""
    driver = connection.driver_connection
    if driver is None:  # already invalidated
        return
    try:
        driver.autocommit = False
    except Exception as error:
        connection.invalidate(error)


def _again_if_lost(work: Callable[[], T]) -> T:
    try:
        return work()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return work()


def is_transient(error: BaseException) -> bool:
    """A database error worth retrying as it is: locked/busy, a lost connection, or no connection free in time
    (PostgreSQL's async pool raises psycopg_pool's PoolTimeout as it is: nothing was sent)."""
    return isinstance(error, OperationalError | PoolTimeout) or (
        isinstance(error, DBAPIError) and bool(getattr(error, "connection_invalidated", False))
    )
