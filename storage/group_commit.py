"""Group commit: many small, independent write units share one transaction.

Order intake stores one order and one event per request. One transaction each costs a commit (and on SQLite a
turn on the single writer thread) per order; under load that, not the work, limits throughput. Units that arrive
within two loop turns of the first, in the turns after that while each turn still brings more (up to
`MAX_GATHER_TURNS`), or while a transaction is being written, go together in the next one. A unit
that raises rolls its whole group back; the group is then retried unit by unit, so only the failing unit sees the
error and the others commit. Units must therefore be re-runnable: they may only touch the session they are given.

A unit may bring its own form for when it is alone in its group (`alone`): on PostgreSQL a lone order is written as
one statement awaited on the loop, one round trip instead of a transaction's five on a writer thread
(storage/repositories/journal.py). Under load groups are larger and take the session's path as before.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import Session

if TYPE_CHECKING:
    from storage.db import Database

T = TypeVar("T")
Unit = Callable[[Session], Any]
Alone = Callable[[], Awaitable[Any]]
Waiting = tuple[Unit, "asyncio.Future[Any]", Alone | None]

MAX_GROUP = 500
# Past the first two turns a group waits one more turn only while the last one brought units: idle, that is one
# turn (microseconds); under load groups grow with what is still arriving. On SQLite much of a commit's cost is per
# commit, not per row (the storage floor for 16 users' orders: ~100 µs an order at 16 a transaction, ~74 at 32):
# groups of ~18 → ~22 orders under the load bench cut CPU per order ~5-10 % (docs/orders.md, "Speed").
MAX_GATHER_TURNS = 16


class GroupCommit:
    def __init__(self, db: Database, max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.max_group = max_group
        self._waiting: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Units are waiting for a transaction, or one is being written (their writers go on once it commits)."""
        return bool(self._waiting) or (self._writer is not None and not self._writer.done())

    async def write(self, unit: Callable[[Session], T], alone: Callable[[], Awaitable[T]] | None = None) -> T:
        """Run `unit(session)` in a transaction shared with concurrent callers; return once it is committed. If the
        unit turns out to be alone in its group and has an `alone` form (the same writes, committed), that runs
        instead."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((unit, future, alone))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        # Let the group gather for two loop turns first. Requests read in one turn reach `write` a turn or two
        # later (each request's task starts on the next turn and awaits its body); committing the first alone cut
        # groups under load to ~10 units, with many of one (docs/orders.md, "Speed"). Idle, a turn is microseconds.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        for _ in range(MAX_GATHER_TURNS):
            arrived = len(self._waiting)
            await asyncio.sleep(0)
            if len(self._waiting) == arrived or arrived >= self.max_group:
                break
        while self._waiting:
            group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group :]
            if len(group) == 1 and group[0][2] is not None:
                await _settle(group[0][1], group[0][2])
                continue
            try:
                results = await self.db.write(functools.partial(_run_all, [unit for unit, _, _ in group]))
            except Exception:
                await self._write_one_by_one(group)
                continue
            for (_, future, _), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _write_one_by_one(self, group: list[Waiting]) -> None:
        for unit, future, _ in group:
            await _settle(future, functools.partial(self.db.write, unit))


async def _settle(future: asyncio.Future[Any], write: Alone) -> None:
    """Run one unit's write; its result or its own failure goes to its caller only."""
    try:
        result = await write()
    except Exception as error:
        if not future.done():
            future.set_exception(error)
    else:
        if not future.done():
            future.set_result(result)


def _run_all(units: list[Unit], session: Session) -> list[Any]:
    return [unit(session) for unit in units]
