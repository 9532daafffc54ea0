"""The paper executor (the LMAX pattern): intake has journaled each order (its PENDING row) before the command
arrives here; this task drains its queue in batches, runs each batch in memory against the paper venue (books,
balances, locks: the venue's state is the authority while it runs), and writes the batch's outputs behind in ONE
transaction of Core `executemany` statements. Events are published only after that commit.

Batches do not overlap: the next one starts after the previous one was written or held, and under load several
batches' outputs are held and written together (app/execution/write_behind.py), so between writes the database
holds exactly what memory holds. A transient database error (SQLite busy, a PostgreSQL failover) retries the same
writes; any other failure rebuilds memory from the database and replays every command since the last write one by
one, so one bad command costs one order ("internal error; nothing executed"), never the batch or a queued paper
reset.
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
from app.execution.paper_failures import fresh, refuse, reject_failed
from app.execution.paper_memory import balance_changes, load_accounts, prepare_batch
from app.execution.recorder import Recorder
from app.execution.records import OrderRecord, Report
from app.execution.write_behind import DATABASE_RETRY, Held, WriteDue, may_hold, write_changes
from app.ids import now_ms
from app.market.models import Trade
from app.portfolio import PositionState
from app.retry import retry
from app.venues.paper import PaperVenue
from storage.db import Database
from storage.repositories import orders as order_repo

log = logging.getLogger(__name__)

MAX_BATCH = 1000
LIVE = ("OPEN", "PARTIALLY_FILLED")


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
        self.queue: asyncio.Queue[PaperCommand | Rescope | WriteDue] = asyncio.Queue()
        self.orders: dict[str, OrderRecord] = {}  # live paper orders (OPEN, PARTIALLY_FILLED)
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.users: dict[str, str] = {}  # account id -> user id, for loaded accounts
        self.queued: set[str] = set()  # order ids with a SubmitOrder in the queue (the sweeper skips them)
        self.processed = 0
        # CLUSTER mode: only the accounts of the partitions this replica holds (app/cluster/); None: every account.
        self.scope: PartitionScope | None = None
        self.held: Held | None = None  # outputs run in memory, not written yet (app/execution/write_behind.py)
        self._unsettled: list[PaperCommand] = []  # taken from the queue; done once their outputs are committed
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
        if self.held is not None:  # outputs memory had not written (the task crashed): the journal is the truth
            self.held.end()
            self.held = None
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
            due = [item for item in items if isinstance(item, WriteDue)]
            batch = [c for c in items if not isinstance(c, Rescope | WriteDue)]
            try:
                if batch:
                    await self._process(batch)
                if self.held is not None and (due or rescope is not None):
                    await self._write_held()
                if rescope is not None:
                    await self._rebuild(requeue=True)
            except Exception:
                log.exception("paper batch of %d commands failed", len(batch))
            finally:
                self._settle(batch)
                for marker in due:
                    self.queue.task_done()
                    if marker.done is not None and not marker.done.done():
                        marker.done.set_result(None)
                if rescope is not None:
                    self.queue.task_done()
                    if not rescope.done.done():
                        rescope.done.set_result(None)
            await asyncio.sleep(0)  # with inline SQLite writes nothing else yields: let requests in between batches

    def _settle(self, batch: list[PaperCommand]) -> None:
        """Commands are done (drain, the sweeper, cluster acknowledgements) once their outputs are committed:
        with outputs held (app/execution/write_behind.py) they wait for the write."""
        self._unsettled.extend(batch)
        if self.held is not None or not self._unsettled:
            return
        settled, self._unsettled = self._unsettled, []
        for command in settled:
            if isinstance(command, SubmitOrder):
                self.queued.discard(command.order_id)
            self.queue.task_done()
        if self.after_batch is not None:
            self.after_batch(settled)

    async def write_held(self) -> None:
        """Write held outputs now (a graceful stop), through the executor's own loop."""
        if self.held is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(WriteDue(done))
        await done

    async def _process(self, batch: list[PaperCommand], *, isolated: bool = False) -> None:
        # Most public trades touch no paper order: skip them without a transaction.
        batch = [c for c in batch if not isinstance(c, MarketTrade) or self.venue.has_live_orders(c.trade.symbol)]
        view = self.scope.view() if self.scope is not None else None
        if view is not None:  # a partition given up or lost since the command was queued: its new owner runs it
            batch = [c for c in batch if isinstance(c, MarketTrade) or view.owns(c.account_id) or refuse(c)]
        if not batch:
            return
        loop = asyncio.get_running_loop()
        held = self.held or Held(loop.time())
        self.held = None
        held.commands.extend(batch)  # everything since the last write: replayed if the write fails
        try:
            for command in await self._prepare(batch):
                self._apply(command, held.changes)
            # In cluster mode every write is fenced by the leases of its own batch: nothing is held there.
            more_coming = not self.queue.empty() or self.db.grouped.busy
            if self.scope is None and not isolated and may_hold(held, batch, loop.time(), more_coming):
                self.held = held
                held.remind(loop, lambda: self.queue.put_nowait(WriteDue()))
                return
            await self._write_out(held, view)
        except LeaseLost as lost:
            held.end()
            await self._lease_lost(lost, held.commands)
        except Exception:
            held.end()
            await self._replay(held.commands, isolated)

    async def _write_held(self) -> None:
        held, self.held = self.held, None
        if held is None:
            return
        try:
            await self._write_out(held, None)
        except Exception:
            await self._replay(held.commands, isolated=False)

    async def _write_out(self, held: Held, view: ScopeView | None) -> None:
        """One transaction for everything held; its events are published once it committed."""
        held.end()
        changes = held.changes
        self._balance_changes(changes)
        await write_changes(self.db, changes, view, self.sleep)
        self.processed += len(held.commands)
        for event in changes.events:
            if event.seq:  # unnumbered: its write committed unanswered (write_changes); the log has it
                self.publish(event)
        for command in held.commands:
            if isinstance(command, ResetAccount) and not command.done.done():
                command.done.set_result(None)

    async def _replay(self, commands: list[PaperCommand], isolated: bool) -> None:
        """Memory may have moved ahead of the database: rebuild it, then find the command that fails."""
        log.exception("a batch of %d commands failed; replaying it command by command", len(commands))
        await self._rebuild()
        if isolated:  # it failed on its own too: this command is the problem
            await self._fail(commands[0])
        else:
            for command in commands:
                await self._process([fresh(command)], isolated=True)

    async def _prepare(self, batch: list[PaperCommand]) -> list[PaperCommand]:
        prepared = await prepare_batch(self.db, batch, self.orders)
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
