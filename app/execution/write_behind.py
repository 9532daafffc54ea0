"""Write-behind under load: the paper executor holds a batch's outputs back while more work is on its way, and
writes the outputs of several batches in one transaction.

Every batch still runs in memory as soon as its commands arrive. What waits is the write: while commands are
queued for the executor, or intake's group commit is busy (orders gathering for a transaction or in one being
written: their commands follow its commit), the batch's `Changes` are kept and the next batch adds to them; they
go out together once that work has arrived, after `HOLD_SECONDS` at most, or at `HOLD_COMMANDS`. Idle (one order
at a time) nothing is coming, so a batch is written at once and a lone order's FILLED is not delayed.

Why: an engine write costs mostly per transaction and per user it touches, not per order. Each user in a
transaction adds a leaf of every user- or account-keyed index, a numbering row, balance and position rows and a
BALANCE_UPDATE; under the HTTP load bench (32 connections, 16 users) a batch held ~16 orders, one per user.
Measured: docs/orders.md, "Speed".

Safe for the same reason write-behind is: an order is acknowledged once intake committed it PENDING; held
outputs are neither written nor published, so a crash loses them as it loses a batch being written (the orders
are still PENDING in the journal and execute at start-up). The commands of held batches stay unsettled (the
queue's `join`, the PENDING sweeper's `queued`) until their outputs are committed; if that write fails, memory is
rebuilt and every command since the last write is replayed one by one, as for one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from app.cluster.scope import ScopeView
from app.execution import changes as batch_writes
from app.execution.changes import Changes
from app.execution.commands import PaperCommand, ResetAccount
from app.ids import id_floor, new_id, now_ms
from app.retry import RetryPolicy, retry
from storage.db import Database, is_transient
from storage.repositories import engine_writes, journal

log = logging.getLogger(__name__)

# The longest a batch's outputs wait for company: under load FILLED arrives up to this much later (the paced
# target is p99 < 15 ms, and a paced order is written at once anyway).
HOLD_SECONDS = 0.005
HOLD_COMMANDS = 1000
# How long an engine write's token is kept (PostgreSQL): far longer than a write's retries take to find it.
TOKENS_KEPT_MS = 3_600_000
# Forever: the batch's commands are journaled, so waiting is safe; giving up would reject accepted orders.
DATABASE_RETRY = RetryPolicy(initial=0.05, maximum=5.0)


@dataclass(frozen=True, slots=True)
class WriteDue:
    """Queued for the executor when held outputs reach HOLD_SECONDS (nothing else came to write them), or to write
    them now (`done` resolves once they are: a graceful stop)."""

    done: asyncio.Future[None] | None = None


@dataclass(slots=True)
class Held:
    """Outputs of batches run in memory and not written yet, and the commands that made them."""

    since: float  # loop time of the first batch held
    changes: Changes = field(default_factory=Changes)
    commands: list[PaperCommand] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None

    def expired(self, now: float) -> bool:
        return now - self.since >= HOLD_SECONDS or len(self.commands) >= HOLD_COMMANDS

    def remind(self, loop: asyncio.AbstractEventLoop, due: Callable[[], object]) -> None:
        """Call `due` once HOLD_SECONDS have passed since the first batch, unless written before."""
        if self.timer is None:
            self.timer = loop.call_at(self.since + HOLD_SECONDS, due)

    def end(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def may_hold(held: Held, batch: list[PaperCommand], now: float, more_coming: bool) -> bool:
    """Whether `held` (which now includes `batch`) may wait for the next batch rather than be written now."""
    if not more_coming or held.expired(now):
        return False
    return not any(isinstance(command, ResetAccount) for command in batch)  # its caller waits for the commit


async def write_changes(db: Database, changes: Changes, view: ScopeView | None, sleep: Callable[[float], Any]) -> None:
    """One transaction; a transient database error retries the same writes (memory is already ahead). In a
    cluster the transaction first checks that the batch's partition leases are still ours (LeaseLost)."""
    if not changes:
        return

    if view is not None:  # a partition dropped since memory was loaded: none of its fills is written here
        view.require(changes.accounts())

    # PostgreSQL: a lost connection can leave a commit's outcome unknown, so the write carries a token that a retry
    # looks for first (storage/repositories/engine_writes.py). SQLite's commit either happened or raised.
    token = None if db.is_sqlite else (new_id(), id_floor(now_ms() - TOKENS_KEPT_MS))
    attempts = 0

    def write(session: Session) -> None:
        if view is not None:
            view.fence(session)
        batch_writes.write(session, changes, token)

    # On SQLite (one writer, the loop) the batch joins the next intake group: the pages both touch (the orders'
    # leaves, the users' event numbers) are then written by one commit instead of two. Not on PostgreSQL: its
    # groups are written one at a time, so intake would wait for the batch (docs/orders.md, "Speed").
    write_batch = db.grouped.write if db.inline else db.write

    async def write_once() -> None:
        nonlocal attempts
        attempts += 1
        if token is not None and attempts > 1 and await db.read(lambda s: engine_writes.committed(s, token[0])):
            # Its events are in the log, unnumbered here: they are not published, and sockets read them from the
            # log at the next event (app/api/ws.py).
            log.warning("an engine write whose commit went unanswered had committed; not written again")
            return
        # PostgreSQL outside a cluster: one statement awaited on the loop, no writer thread holding the GIL.
        if token is not None and view is None and journal.available(db) and batch_writes.fits_one_statement(changes):
            await batch_writes.write_statement(db, changes, token)
        else:
            await write_batch(write)

    await retry(
        write_once,
        policy=DATABASE_RETRY,
        retry_on=is_transient,
        sleep=sleep,
        on_retry=lambda n, _, delay: log.warning("database busy or gone (try %d); again in %.2f s", n, delay),
    )
