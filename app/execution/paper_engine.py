"""The paper executor (the LMAX pattern): intake has journaled each order (its PENDING row) before the command
arrives here; this task drains its queue in batches, runs each batch in memory against the paper venue (books,
balances, locks: the venue's state is the authority while it runs), and writes the batch's outputs behind in ONE
transaction of Core `executemany` statements. Events are published only after that commit.

Batches do not overlap: the next one starts after the previous one committed, so between batches the database
holds exactly what memory holds. A transient database error (SQLite busy, a PostgreSQL failover) retries the same
writes; any other failure rebuilds memory from the database and replays the batch command by command, so one bad
command costs one order ("internal error; nothing executed"), never the batch or a queued paper reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from app.cluster.leases import LeaseLost
from app.cluster.partitions import partition_of_lease
from app.cluster.scope import PartitionScope, ScopeView
from app.domain import OrderStatus, Venue
from app.events import UserEvent
from app.execution import changes as batch_writes
from app.execution.changes import Changes
from app.execution.commands import (
    CancelOrder,
    MarketTrade,
    PaperCommand,
    Rescope,
    ResetAccount,
    SubmitOrder,
    SubmitOrderList,
)
from app.execution.paper_failures import fresh, in_list, refuse, reject_failed
from app.execution.paper_memory import balance_changes, load_accounts
from app.execution.recorder import Recorder
from app.execution.records import OrderRecord, Report
from app.ids import now_ms
from app.market.models import Trade
from app.portfolio import PositionState
from app.retry import RetryPolicy, retry
from app.venues.paper import PaperVenue
from storage.db import Database, is_transient
from storage.repositories import orders as order_repo

log = logging.getLogger(__name__)

MAX_BATCH = 1000
LIVE = ("OPEN", "PARTIALLY_FILLED")
# Forever: the batch's commands are journaled, so waiting is safe; giving up would reject accepted orders.
DATABASE_RETRY = RetryPolicy(initial=0.05, maximum=5.0)


class PaperExecutor:
    def __init__(
        self,
        db: Database,
        venue: PaperVenue,
        publish: Callable[[UserEvent], None],
        recorder: Recorder,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.venue = venue
        self.publish = publish
        self.recorder = recorder
        self.sleep = sleep
        self.queue: asyncio.Queue[PaperCommand | Rescope] = asyncio.Queue()
        self.orders: dict[str, OrderRecord] = {}  # live paper orders (OPEN, PARTIALLY_FILLED)
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.users: dict[str, str] = {}  # account id -> user id, for loaded accounts
        self.queued: set[str] = set()  # order ids with a SubmitOrder in the queue (the sweeper skips them)
        self.processed = 0
        # CLUSTER mode: only the accounts of the partitions this replica holds (app/cluster/); None: every account.
        self.scope: PartitionScope | None = None
        self.after_batch: Callable[[list[PaperCommand]], None] | None = None  # acknowledges forwarded commands

    # ---- commands in ---------------------------------------------------------------------------------------

    def submit(self, command: SubmitOrder) -> None:
        self.queued.add(command.order_id)
        self.queue.put_nowait(command)

    def cancel(self, command: CancelOrder) -> None:
        self.queue.put_nowait(command)

    def on_market_trade(self, trade: Trade) -> None:
        self.queue.put_nowait(MarketTrade(trade))

    async def reset_account(self, account_id: str, user_id: str, balances: dict[str, Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(ResetAccount(account_id, user_id, balances, done))
        await done

    async def drain(self) -> None:
        await self.queue.join()

    async def rescope(self) -> None:
        """The partitions held changed: between two batches, load memory again for what is held now and
        re-queue the PENDING orders and stored cancel requests of the partitions just taken over."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Rescope(done))
        await done

    def owns(self, account_id: str) -> bool:
        return self.scope is None or self.scope.owns(account_id)

    # ---- start-up --------------------------------------------------------------------------------------------

    async def recover(self, *, requeue: bool = True) -> None:
        """Load memory from the database: resting orders into the venue, their accounts' balances and positions.
        With `requeue`, PENDING orders and stored cancel requests become commands again (start-up)."""

        def load(session: Session) -> tuple[list[OrderRecord], list[OrderRecord]]:
            live = order_repo.rows_in_statuses_for_venue(session, Venue.PAPER, LIVE)
            pending = order_repo.rows_in_statuses_for_venue(session, Venue.PAPER, ("PENDING",)) if requeue else []
            owned = [OrderRecord.from_row(r) for r in live if self.owns(r["account_id"])]
            return owned, [OrderRecord.from_row(r) for r in pending if self.owns(r["account_id"])]

        live, pending = await self.db.read(load)
        self.venue.reset_book()
        self.orders.clear()
        self.positions.clear()
        self.users.clear()
        await self._load_accounts({order.account_id for order in live})
        for order in live:
            self.venue.restore(order)
            self.orders[order.id] = order
        for order in pending:
            self.submit(SubmitOrder(order.id, order.account_id, Venue.PAPER, order))
        for order in live if requeue else ():
            if order.cancel_requested_at is not None:
                self.cancel(CancelOrder(order.id, order.account_id, Venue.PAPER))
        if live or pending:
            log.info("recovered %d open and %d pending paper orders", len(live), len(pending))

    async def _load_accounts(self, account_ids: set[str]) -> None:
        await load_accounts(self.db, self.venue.ledger, self.positions, self.users, account_ids)

    # ---- the loop --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            items = [await self.queue.get()]
            # A Rescope ends the batch: it runs between batches, when memory and the database agree.
            while len(items) < MAX_BATCH and not self.queue.empty() and not isinstance(items[-1], Rescope):
                items.append(self.queue.get_nowait())
            rescope = items[-1] if isinstance(items[-1], Rescope) else None
            batch = [c for c in items if not isinstance(c, Rescope)]
            try:
                if batch:
                    await self._process(batch)
                if rescope is not None:
                    await self._rebuild(requeue=True)
            except Exception:
                log.exception("paper batch of %d commands failed", len(batch))
            finally:
                for command in batch:
                    if isinstance(command, SubmitOrder):
                        self.queued.discard(command.order_id)
                    self.queue.task_done()
                if self.after_batch is not None and batch:
                    self.after_batch(batch)
                if rescope is not None:
                    self.queue.task_done()
                    if not rescope.done.done():
                        rescope.done.set_result(None)
            await asyncio.sleep(0)  # with inline SQLite writes nothing else yields: let requests in between batches

    async def _process(self, batch: list[PaperCommand], *, isolated: bool = False) -> None:
        # Most public trades touch no paper order: skip them without a transaction.
        batch = [c for c in batch if not isinstance(c, MarketTrade) or self.venue.has_live_orders(c.trade.symbol)]
        view = self.scope.view() if self.scope is not None else None
        if view is not None:  # a partition given up or lost since the command was queued: its new owner runs it
            batch = [c for c in batch if isinstance(c, MarketTrade) or view.owns(c.account_id) or refuse(c)]
        if not batch:
            return
        changes = Changes()
        try:
            batch = await self._prepare(batch)
            for command in batch:
                self._apply(command, changes)
            self._balance_changes(changes)
            await self._write(changes, view)
        except LeaseLost as lost:
            await self._lease_lost(lost, batch)
            return
        except Exception:
            # Memory may have moved ahead of the database: rebuild it, then find the command that fails.
            log.exception("a batch of %d commands failed; replaying it command by command", len(batch))
            await self._rebuild()
            if isolated:  # it failed on its own too: this command is the problem
                await self._fail(batch[0])
            else:
                for command in batch:
                    await self._process([fresh(command)], isolated=True)
            return
        self.processed += len(batch)
        for event in changes.events:
            self.publish(event)
        for command in batch:
            if isinstance(command, ResetAccount) and not command.done.done():
                command.done.set_result(None)

    async def _prepare(self, batch: list[PaperCommand]) -> list[PaperCommand]:
        """Read what the batch needs and memory lacks (records of recovered submits, accounts) in one go; drop a
        repeated submit of the same order."""
        # An order list's legs are always read from the journal: a carried copy may be older than a batch that ran.
        wanted = [c.order_id for c in batch if isinstance(c, SubmitOrder) and (c.record is None or in_list(c.record))]
        loaded: dict[str, OrderRecord] = {}
        lists: dict[str, list[OrderRecord]] = {}
        if wanted:
            rows = await self.db.read(lambda s: order_repo.rows_by_ids(s, wanted))
            loaded = {row["id"]: OrderRecord.from_row(row) for row in rows}
            groups = sorted({r.oco_group for r in loaded.values() if in_list(r) and r.oco_group is not None})
            if groups:
                for row in await self.db.read(lambda s: order_repo.rows_in_groups(s, groups)):
                    leg = loaded[row["id"]] = OrderRecord.from_row(row)
                    lists.setdefault(leg.oco_group or "", []).append(leg)
        prepared: list[PaperCommand] = []
        seen: set[str] = set()
        for command in batch:
            if isinstance(command, SubmitOrder):
                carried = command.record if command.record is not None and not in_list(command.record) else None
                record = carried or loaded.get(command.order_id)
                if record is None or command.order_id in seen or command.order_id in self.orders:
                    continue
                if in_list(record):
                    legs = lists.get(record.oco_group or "", [record])
                    seen.update(leg.id for leg in legs)
                    prepared.append(SubmitOrderList(record.account_id, tuple(legs)))
                    continue
                seen.add(command.order_id)
                command = SubmitOrder(command.order_id, command.account_id, command.venue, record)
            prepared.append(command)
        accounts = {c.account_id for c in prepared if isinstance(c, SubmitOrder | SubmitOrderList | ResetAccount)}
        await self._load_accounts(accounts)
        return prepared

    # ---- one batch, in memory -------------------------------------------------------------------------------

    def _apply(self, command: PaperCommand, changes: Changes) -> None:
        if isinstance(command, SubmitOrder):
            assert command.record is not None
            self._submit(command.record, changes)
        elif isinstance(command, SubmitOrderList):
            self._submit_list(list(command.records), changes)
        elif isinstance(command, CancelOrder):
            self._record_all(self.venue.cancel(command.order_id, "canceled by the user"), changes)
        elif isinstance(command, MarketTrade):
            self._record_all(self.venue.on_trade(command.trade), changes)
        else:
            self._reset(command, changes)

    def _submit(self, order: OrderRecord, changes: Changes) -> None:
        if order.status != OrderStatus.PENDING:
            return  # already executed (a recovery duplicate)
        self.users.setdefault(order.account_id, order.user_id)
        if order.cancel_requested_at is not None:
            self.recorder.transition(order, OrderStatus.CANCELED, "canceled before execution", changes)
            return
        # The kill switch may have changed since intake accepted the order.
        stopped = self.recorder.trading.at_execution(order, self._position(order.account_id, order.symbol).quantity)
        if stopped is not None:
            self.recorder.transition(order, stopped[0], stopped[1], changes)
            return
        order.sent_at = now_ms()
        self.orders[order.id] = order
        # A replacement (modify/replace) takes the order it replaces off the book in the same venue call.
        venue_call = self.venue.replace if order.replaces is not None else self.venue.submit
        self._record_all(venue_call(order, order.sent_at), changes)

    def _submit_list(self, legs: list[OrderRecord], changes: Changes) -> None:
        """A stand-alone OCO: its legs go to the venue together (accepted or refused as one), once."""
        if any(leg.status != OrderStatus.PENDING or leg.id in self.orders for leg in legs):
            return  # already executed (a recovery duplicate)
        for leg in legs:
            self.users.setdefault(leg.account_id, leg.user_id)
        if any(leg.cancel_requested_at is not None for leg in legs):
            for leg in legs:
                self.recorder.transition(leg, OrderStatus.CANCELED, "canceled before execution", changes)
            return
        # The kill switch may have changed since intake accepted the pair: one leg refused ends both.
        position = self._position(legs[0].account_id, legs[0].symbol).quantity
        stopped = next((s for s in (self.recorder.trading.at_execution(leg, position) for leg in legs) if s), None)
        if stopped is not None:
            for leg in legs:
                self.recorder.transition(leg, stopped[0], stopped[1], changes)
            return
        self._submit_exits(legs, changes)

    def _submit_exits(self, legs: list[OrderRecord], changes: Changes) -> None:
        """A bracket's exit pair goes to the venue as one order list."""
        now = now_ms()
        for leg in legs:
            leg.sent_at = now
            self.orders[leg.id] = leg
        self._record_all(self.venue.submit_list(legs, now), changes)

    def _record_all(self, reports: list[Report], changes: Changes) -> None:
        for report in reports:
            order = self.orders.get(report.order_id)
            if order is None:
                log.error("the paper venue reported unknown order %s", report.order_id)
                continue
            rules = self.venue.rules[order.symbol]
            legs = self.recorder.record(order, report, rules, self._position, changes)
            if order.is_terminal:
                del self.orders[order.id]
            if legs:
                self._submit_exits(legs, changes)

    def _reset(self, command: ResetAccount, changes: Changes) -> None:
        self.users.setdefault(command.account_id, command.user_id)
        self._record_all(self.venue.cancel_account(command.account_id, "paper account reset"), changes)
        for asset in self.venue.ledger.set_balances(command.account_id, command.balances):
            changes.removed_balances.append((command.account_id, asset))
        for key, position in self.positions.items():
            if key[0] == command.account_id:
                position.quantity = position.cost = position.realized_pnl = type(position.quantity)(0)
                changes.positions[key] = position
                self.recorder.trading.position_moved(key[0], key[1], position.quantity)

    def _position(self, account_id: str, symbol: str) -> PositionState:
        key = (account_id, symbol)
        position = self.positions.get(key)
        if position is None:
            position = self.positions[key] = PositionState(account_id, symbol)
        return position

    def _balance_changes(self, changes: Changes) -> None:
        balance_changes(self.venue.ledger, self.users, changes)

    # ---- writing, and what happens when it fails ---------------------------------------------------------------

    async def _write(self, changes: Changes, view: ScopeView | None = None) -> None:
        """One transaction; a transient database error retries the same writes (memory is already ahead). In a
        cluster the transaction first checks that the batch's partition leases are still ours (LeaseLost)."""
        if not changes:
            return

        if view is not None:  # a partition dropped since memory was loaded: none of its fills is written here
            view.require(changes.accounts())

        def write(session: Session) -> None:
            if view is not None:
                view.fence(session)
            batch_writes.write(session, changes)

        # On SQLite (one writer, the loop) the batch joins the next intake group: the pages both touch (the orders'
        # leaves, the users' event numbers) are then written by one commit instead of two. Not on PostgreSQL: its
        # groups are written one at a time, so intake would wait for the batch (docs/orders.md, "Speed").
        write_batch = self.db.grouped.write if self.db.inline else self.db.write
        await retry(
            lambda: write_batch(write),
            policy=DATABASE_RETRY,
            retry_on=is_transient,
            sleep=self.sleep,
            on_retry=lambda n, _, delay: log.warning("database busy or gone (try %d); again in %.2f s", n, delay),
        )

    async def _lease_lost(self, lost: LeaseLost, batch: list[PaperCommand]) -> None:
        """Another replica took a partition of this batch: nothing was committed. Give up the partitions named,
        rebuild memory for the rest and queue the batch again (its commands of lost partitions are dropped)."""
        log.warning("partition lease lost (%s): this replica no longer executes it", ", ".join(lost.names))
        for partition in (partition_of_lease(name) for name in lost.names):
            if self.scope is not None and partition is not None:
                self.scope.drop(partition)
        await self._rebuild()
        for command in batch:
            if not isinstance(command, ResetAccount):
                self.queue.put_nowait(fresh(command))
            elif not command.done.done():
                command.done.set_exception(LeaseLost(lost.names))

    async def _rebuild(self, *, requeue: bool = False) -> None:
        """Memory moved ahead of the database in a batch that did not commit: load it again (retried until the
        database answers; the commands of the batch and the queue wait meanwhile). With `requeue` (a change of
        the partitions held), PENDING orders and cancel requests become commands again."""

        async def reload() -> None:
            await self.recover(requeue=requeue)
            self.recorder.open_orders.load(await self.db.read(order_repo.open_counts))

        def failed(attempt: int, _: BaseException, delay: float) -> None:
            log.error("rebuilding the paper venue failed (try %d); again in %.2f s", attempt, delay)

        await retry(reload, policy=DATABASE_RETRY, sleep=self.sleep, on_retry=failed)

    async def _fail(self, command: PaperCommand) -> None:
        """A single command that cannot be applied: reject its order rather than retrying forever."""
        view = self.scope.view() if self.scope is not None else None
        for event in await reject_failed(self.db, self.recorder, command, view):
            self.publish(event)
