"""PostgreSQL's hot reads awaited on the event loop (psycopg's `AsyncConnectionPool`): `Database.fetch` and
`Database.fetch_plan`; and one write, a lone order's one-statement journal entry (`write_once`,
storage/repositories/journal.py), which is one round trip like a read.

On the reader threads (`Database.fetch_in`) every read pays a hand-over: the loop wakes a thread, the thread waits
for the GIL the busy loop holds, and the answer comes back through the loop again. Awaited on the loop, a read
costs about half the CPU (docs/orders.md, "Speed"). Intake's lookups stay on the threads: in a burst of thousands
of orders the loop is the bottleneck, and there the threads make the system calls on the second core with the GIL
released (awaiting them on the loop made such bursts ~40 % slower).

Connections are in autocommit (a one-statement read needs no transaction: one round trip, as `Database.fetch_in`'s
reads run too), named like the engine's (a cluster replica's sessions carry its name), and pinged before use only
after `PING_AFTER_IDLE_SECONDS` idle, as the engine's pool is. A read whose connection turns out lost is run once
more on another one. A pool belongs to one event loop (psycopg's async connections do), so there is one per loop,
opened on first use and closed by `close` on that loop (`Services.stop`). A database that cannot be reached fails
a read within `WAIT_SECONDS` (the pool would wait 30 s by default), and the next read tries to connect again.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from storage.driver_reads import ReadPlan, driver_error

T = TypeVar("T")

PING_AFTER_IDLE_SECONDS = 1.0
MAX_CONNECTIONS = 4  # as many as the reader threads: reads are short, the loop runs one at a time anyway
WAIT_SECONDS = 5.0  # for a connection: a queue of reads clears in milliseconds; longer means the database is gone


class AsyncReadPool:
    def __init__(self, engine: Engine, *, application_name: str | None = None) -> None:
        _, params = engine.dialect.create_connect_args(engine.url)
        if application_name:
            params["application_name"] = application_name
        self.dialect = engine.dialect
        # SQLAlchemy's adapters (how its connections load and dump types) go to the connections as they are.
        self._kwargs = {"autocommit": True, **({"context": params.pop("context")} if "context" in params else {})}
        self._conninfo = make_conninfo("", **params)
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool[AsyncConnection[Any]]] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Future[AsyncConnectionPool[AsyncConnection[Any]]]] = {}
        self._last_used: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = weakref.WeakKeyDictionary()

    async def run(self, plan: Callable[[], ReadPlan[T]]) -> T:
        """The answer of a fresh `plan()` on one connection, once more on another if this one was found lost (reads
        are safe to repeat)."""
        try:
            return await self._run_once(plan())
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return await self._run_once(plan())

    async def write_once(
        self, sql: str, params: tuple[Any, ...], *, prepare: bool | None = None
    ) -> list[tuple[Any, ...]]:
        """One writing statement in its own implicit transaction (autocommit): committed when this returns; its
        rows. Not run again on a lost connection, unlike a read: it may have committed (the caller decides).
        `prepare=False`: planned at every run, never a prepared statement (psycopg's `prepare`; None: prepared
        once it has run a few times)."""
        pool = self._pools.get(asyncio.get_running_loop()) or await self._open()
        async with pool.connection() as connection:
            try:
                async with connection.cursor() as cursor:
                    await cursor.execute(sql, params, prepare=prepare)
                    return await cursor.fetchall()
            except self.dialect.loaded_dbapi.Error as error:
                raise driver_error(sql, params, error, self.dialect, bool(connection.broken)) from error

    def open_on_a_running_loop(self) -> bool:
        """A pool left open on a loop that still runs: its worker tasks would hang that loop's shutdown."""
        return any(not pool.closed and loop.is_running() for loop, pool in self._pools.items())

    async def close(self) -> None:
        """Close this loop's pool (pools of loops that ended went with their connections)."""
        loop = asyncio.get_running_loop()
        self._opening.pop(loop, None)
        pool = self._pools.pop(loop, None)
        for other in [other for other in self._pools if other.is_closed()]:
            del self._pools[other]
        if pool is not None:
            await pool.close()

    async def _run_once(self, plan: ReadPlan[T]) -> T:
        pool = self._pools.get(asyncio.get_running_loop()) or await self._open()
        async with pool.connection() as connection:
            try:
                read, params = next(plan)
                while True:
                    read, params = plan.send(await read.rows_async(connection, self.dialect, params))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _open(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        """This loop's pool; concurrent first reads wait for the one being opened."""
        loop = asyncio.get_running_loop()
        opening = self._opening.get(loop)
        if opening is None:
            opening = self._opening[loop] = loop.create_task(self._new_pool(loop))
        try:
            return await asyncio.shield(opening)
        except Exception:
            if self._opening.get(loop) is opening:  # not kept: the next read tries to open one again
                del self._opening[loop]
            raise

    async def _new_pool(self, loop: asyncio.AbstractEventLoop) -> AsyncConnectionPool[AsyncConnection[Any]]:
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            self._conninfo,
            kwargs=self._kwargs,
            min_size=1,
            max_size=MAX_CONNECTIONS,
            open=False,
            check=self._ping_if_idle,
            reset=self._note_use,
            name="tradewind-reads",
            timeout=WAIT_SECONDS,
        )
        try:
            await pool.open(wait=True, timeout=WAIT_SECONDS)  # its first connection up: first reads do not each grow it
        except BaseException:
            await pool.close()  # after a timeout psycopg_pool has closed it; cancelled, it would go on trying
            raise
        self._pools[loop] = pool
        return pool

    async def _ping_if_idle(self, connection: AsyncConnection[Any]) -> None:
        """Before a read: a connection that sat idle (a server restart, an idle timeout) is found dead here and
        replaced by the pool, unseen by the read. One used within the last second is trusted (a ping is a round
        trip, ~1 ms under load)."""
        last_used = self._last_used.get(connection)
        if last_used is not None and time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS:
            return
        await AsyncConnectionPool.check_connection(connection)

    async def _note_use(self, connection: AsyncConnection[Any]) -> None:
        self._last_used[connection] = time.monotonic()
