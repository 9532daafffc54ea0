"""Group commit: many small, independent write units share one transaction.

Order intake stores one order and one event per request. One transaction each costs a commit (and on SQLite a
turn on the single writer thread) per order; under load that, not the work, limits throughput. Units that arrive
within two loop turns of the first, in the turns after that while each turn still brings more (up to
`MAX_GATHER_TURNS`), or while a transaction is being written, go together in the next one. A unit
that raises rolls its whole group back; the group is then retried unit by unit, so only the failing unit sees the
error and the others commit. Units must therefore be re-runnable: they may only touch the session they are given.

A unit may bring its own form for when it is alone in its group (`alone`): on PostgreSQL a lone order is written as
one statement awaited on the loop, one round trip instead of a transaction's five on a writer thread
(storage/repositories/journal.py). It may also bring its part of a whole group's form (`together`: a writer shared
by the group's units, and this unit's data for it): a group whose units all name the same writer is written by one
call of it (on PostgreSQL, intake's orders: one statement instead of a transaction of six round trips on a writer
thread; two such groups may be in flight at once, `WRITERS_IN_FLIGHT`). A failed call is treated as a failed
transaction: the units are written one by one.
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
GroupWriter = Callable[[list[Any]], Awaitable[list[Any]]]
"""Writes a group's data (one item per unit, in order) and commits it; each unit's result, in the same order."""
Together = tuple[GroupWriter, Any]
Waiting = tuple[Unit, "asyncio.Future[Any]", Alone | None, Together | None]

MAX_GROUP = 500
# Past the first two turns a group waits one more turn only while the last one brought units: idle, that is one
# turn (microseconds); under load groups grow with what is still arriving. On SQLite much of a commit's cost is per
# commit, not per row (the storage floor for 16 users' orders: ~100 µs an order at 16 a transaction, ~74 at 32):
# groups of ~18 → ~22 orders under the load bench cut CPU per order ~5-10 % (docs/orders.md, "Speed").
MAX_GATHER_TURNS = 16
# Groups stored by their own writer (on PostgreSQL one statement awaited on the loop, no writer thread) may have two
# in flight: the next group is sent while the last one commits (its WAL flush, its users' row locks) instead of
# gathering behind it. Under the load bench one in flight was inside the spread of the build before and two were
# faster in every alternated pair (docs/orders.md, "Speed"); session transactions (SQLite's inline writes,
# PostgreSQL's writer threads) stay one at a time.
WRITERS_IN_FLIGHT = 2


class GroupCommit:
    def __init__(self, db: Database, max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.max_group = max_group
        self._waiting: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Units are waiting for a transaction, or one is being written (their writers go on once it commits)."""
        return bool(self._waiting or self._in_flight) or (self._writer is not None and not self._writer.done())

    async def write(
        self,
        unit: Callable[[Session], T],
        alone: Callable[[], Awaitable[T]] | None = None,
        together: Together | None = None,
    ) -> T:
        """Run `unit(session)` in a transaction shared with concurrent callers; return once it is committed. If the
        unit turns out to be alone in its group and has an `alone` form (the same writes, committed), that runs
        instead; if every unit of its group brings `together` with the same writer, that writer stores them all."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((unit, future, alone, together))
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
            writer = _shared_writer(group)
            if writer is None:
                await self._write_group(group, None)
                continue
            while len(self._in_flight) >= WRITERS_IN_FLIGHT:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            sending = asyncio.create_task(self._write_group(group, writer))
            self._in_flight.add(sending)
            sending.add_done_callback(self._in_flight.discard)

    async def _write_group(self, group: list[Waiting], writer: GroupWriter | None) -> None:
        """One transaction (or one call of the group's writer) for the whole group; one by one if it fails."""
        try:
            if writer is not None:
                results = await writer([together[1] for *_, together in group if together is not None])
            else:
                results = await self.db.write(functools.partial(_run_all, [unit for unit, *_ in group]))
        except Exception:
            await self._write_one_by_one(group)
            return
        for (_, future, *_), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _write_one_by_one(self, group: list[Waiting]) -> None:
        for unit, future, *_ in group:
            await _settle(future, functools.partial(self.db.write, unit))


def _shared_writer(group: list[Waiting]) -> GroupWriter | None:
    """The group's own writer, if every unit brings one and it is the same."""
    first = group[0][3]
    if first is None or any(together is None or together[0] != first[0] for *_, together in group):
        return None
    return first[0]


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
