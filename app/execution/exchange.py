"""Execution on exchange venues (Binance Spot Testnet): one worker per account (app/execution/exchange_worker.py);
this host routes commands to the workers, runs recovery, and records what the venues report — through the same
`Recorder` as the paper venue, one transaction per report (Core statements), events published after the commit.

Fills are recorded one by one, de-duplicated by the venue's trade id, whichever path reports them first (the order
response, the user-data stream, or a reconciliation). Orders the venue has but we did not place are imported as
external. Testnet balances are the exchange's: its snapshots are mirrored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

from sqlmodel import Session

from app.cluster.scope import PartitionScope
from app.domain import OrderStatus, SymbolRules, Venue
from app.events import UserEvent
from app.execution import changes as batch_writes
from app.execution.changes import Changes
from app.execution.commands import CancelOrder, SubmitOrder
from app.execution.exchange_reports import as_report, find_order, imported, mirror_balances_in, positions_in
from app.execution.exchange_worker import AccountWorker, Job
from app.execution.recorder import Recorder
from app.execution.records import OrderRecord
from app.ids import now_ms
from app.retry import RetryPolicy, retry
from app.venues.base import VenueBalance, VenueOrder
from app.venues.directory import VenueDirectory
from storage.db import Database
from storage.models import Account, Order
from storage.repositories import accounts, orders

log = logging.getLogger(__name__)

WORKER_START_RETRY = RetryPolicy(initial=0.5, maximum=30.0)  # until the venue answers
KEY_REJECTED = "EXCHANGE_KEY_REJECTED"
T = TypeVar("T")

KEY_REJECTED_REASON = "This account needs a new API key (the exchange refused it, or it cannot be read); add one."
KEY_REJECTED_CANCEL = "Canceled here: this account's API key is refused or unreadable, so the exchange was not asked."


class ExchangeExecutor:
    """Routes exchange accounts' commands to their workers; records venue reports in one transaction each."""

    def __init__(
        self,
        db: Database,
        venues: VenueDirectory,
        publish: Callable[[UserEvent], None],
        recorder: Recorder,
        *,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.venues = venues
        self.publish = publish
        self.recorder = recorder
        self._sleep = sleep
        self.workers: dict[str, AccountWorker] = {}
        self._starting: dict[str, asyncio.Task[AccountWorker | None]] = {}
        self._backlog: dict[str, list[Job]] = {}  # jobs of accounts whose worker is starting
        self._retiring: set[asyncio.Task[None]] = set()
        # One writer per account at a time: the worker's jobs and its user-data stream report the same orders
        # concurrently (an order's POST answer and its executionReport), and rows are not locked (PostgreSQL
        # would otherwise apply both: a transition twice, a bracket's exits twice).
        self._record_locks: dict[str, asyncio.Lock] = {}
        # CLUSTER mode: only the accounts of the partitions this replica holds (app/cluster/); None: every account.
        self.scope: PartitionScope | None = None

    def owns(self, account_id: str) -> bool:
        return self.scope is None or self.scope.owns(account_id)

    async def _write(self, account_id: str, work: Callable[[Session], T]) -> T:
        """`db.write`, fenced in a cluster by the lease of the account's partition (LeaseLost: taken, or given up)."""
        view = self.scope.view() if self.scope is not None else None
        if view is None:
            return await self.db.write(work)

        def fenced(session: Session) -> T:
            view.fence_account(session, account_id)
            return work(session)

        return await self.db.write(fenced)

    def _recording(self, account_id: str) -> asyncio.Lock:
        return self._record_locks.setdefault(account_id, asyncio.Lock())

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)  # type: ignore[misc]

    def submit(self, command: SubmitOrder) -> None:
        self._enqueue(command.account_id, Job("submit", command.order_id))

    def cancel(self, command: CancelOrder) -> None:
        self._enqueue(command.account_id, Job("cancel", command.order_id))

    async def close_account(self, account_id: str) -> None:
        """A deleted exchange account: stop its worker and close its venue client (its keys are gone)."""
        starting = self._starting.pop(account_id, None)
        if starting is not None:  # it may be retrying a venue that is down: stop it
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        self._backlog.pop(account_id, None)
        worker = self.workers.pop(account_id, None)
        if worker is not None:
            await worker.stop()

    def account_added(self, account_id: str) -> None:
        """A new exchange account: start its worker now (user-data stream, open orders, balance snapshot)."""
        self._enqueue(account_id, Job("reconcile"))

    def reconcile_all(self) -> None:
        for account_id in list(self.workers):
            self._enqueue(account_id, Job("reconcile"))

    def _enqueue(self, account_id: str, job: Job) -> None:
        """Give the job to the account's worker; while the worker is starting (or retrying its start), the job
        waits in the account's backlog, in order."""
        worker = self.workers.get(account_id)
        if worker is not None:
            worker.jobs.put_nowait(job)
            return
        if not self.owns(account_id):
            return  # another replica holds the account's partition: its worker runs there
        self._backlog.setdefault(account_id, []).append(job)
        self._ensure_starting(account_id)

    def _ensure_starting(self, account_id: str) -> asyncio.Task[AccountWorker | None]:
        task = self._starting.get(account_id)
        if task is None:
            task = self._starting[account_id] = asyncio.create_task(self._start_worker(account_id))
        return task

    async def worker(self, account_id: str) -> AccountWorker | None:
        """The account's running worker, started if needed; None if it can never start (no such account)."""
        if account_id in self.workers:
            return self.workers[account_id]
        return await asyncio.shield(self._ensure_starting(account_id))

    async def _start_worker(self, account_id: str) -> AccountWorker | None:
        """Start the account's worker, retrying with backoff while the venue cannot be reached (its rules cannot
        be loaded); the backlog of jobs waits meanwhile and is handed over, in order, once it runs. An account
        that needs a new key (refused by the venue, or unreadable here) gets its backlog settled without it."""
        account: Account | None = None
        try:
            account = await self.db.read(lambda s: accounts.get(s, account_id))
            if account is None or account.deleted_at is not None:
                raise LookupError(f"no exchange account {account_id}")
            if account.key_rejected_at is not None:
                raise LookupError(f"the venue refused the key of account {account_id}")
            known = account
            worker = await retry(
                lambda: self._new_worker(known),
                policy=WORKER_START_RETRY,
                retry_on=lambda exc: not isinstance(exc, LookupError),
                sleep=self.sleep,
                on_retry=lambda n, exc, delay: log.warning(
                    "the venue worker of account %s could not start (try %d, %s); retrying in %.1f s",
                    account_id,
                    n,
                    type(exc).__name__,
                    delay,
                ),
            )
        except LookupError as exc:
            backlog = self._backlog.pop(account_id, [])
            log.warning(
                "no venue worker for account %s (%s); %d queued jobs settled here", account_id, exc, len(backlog)
            )
            if account is not None and account.deleted_at is None:
                await self._settle_without_venue(account, backlog)
            return None
        finally:
            self._starting.pop(account_id, None)
        for job in self._backlog.pop(account_id, []):
            worker.jobs.put_nowait(job)
        self.workers[account_id] = worker
        return worker

    async def key_rejected(self, worker: AccountWorker, message: str) -> None:
        """The venue refused the account's API key: mark the account (it needs a new key), tell the user, retire
        the worker (no more retries) and settle what it still had queued without the venue."""
        account = worker.account
        now = now_ms()

        def mark(session: Session) -> list[UserEvent]:
            row = accounts.get(session, account.id)
            if row is not None and row.key_rejected_at is None:
                row.key_rejected_at = now
                session.add(row)
            changes = Changes()
            text = f"Binance refused this account's API key ({message}). Add a new key; nothing is sent until then."
            data = {"account_id": account.id, "code": KEY_REJECTED, "message": text, "retry_after": 0}
            changes.event(account.user_id, "NOTICE", data, now)
            batch_writes.write(session, changes)
            return changes.events

        for event in await self._write(account.id, mark):
            self.publish(event)
        log.warning("the API key of exchange account %s was refused; its worker stops", account.id)
        if self.workers.get(account.id) is worker:
            del self.workers[account.id]
        await self._settle_without_venue(account, worker.take_remaining())
        retiring = asyncio.create_task(worker.stop())  # not awaited here: it cancels the task we run in
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _settle_without_venue(self, account: Account, jobs: list[Job]) -> None:
        """Jobs of an account that needs a new key: an unsent order is rejected, a cancel completes here (the venue
        cannot be asked), everything else is dropped."""
        for job in jobs:
            if job.order_id is None:
                continue
            if job.kind == "submit":
                await self.record_status(account, job.order_id, OrderStatus.REJECTED, KEY_REJECTED_REASON)
            elif job.kind == "cancel":
                await self.record_status(account, job.order_id, OrderStatus.CANCELED, KEY_REJECTED_CANCEL)

    async def _new_worker(self, account: Account) -> AccountWorker:
        worker = AccountWorker(self, account, self.venues.open(account))
        try:
            await worker.start()
        except BaseException:
            await worker.venue.close()
            raise
        return worker

    async def start(self, partition: int | None = None) -> None:
        """Recovery: start a worker per exchange account and resolve everything that may be at the venue. In a
        cluster, for the accounts of one partition just taken over (`partition`), and none at start-up (the
        partitions are not held yet)."""
        if self.scope is not None and partition is None:
            return
        scope = self.scope

        def mine(account_id: str) -> bool:
            return scope is None or scope.partition(account_id) == partition

        def load(session: Session) -> list[Order]:
            return orders.in_statuses_for_venue(session, Venue.BINANCE_TESTNET, ("PENDING", "OPEN", "PARTIALLY_FILLED"))

        for order in [o for o in await self.db.read(load) if mine(o.account_id)]:
            if order.status == OrderStatus.PENDING and order.sent_at is None:
                self._enqueue(order.account_id, Job("submit", order.id))
            elif order.status == OrderStatus.PENDING:
                self._enqueue(order.account_id, Job("resolve", order.id))
            if order.cancel_requested_at is not None:
                self._enqueue(order.account_id, Job("cancel", order.id))
        account_ids = await self.db.read(lambda s: accounts.active_ids_for_venue(s, Venue.BINANCE_TESTNET))
        for account_id in account_ids:
            if mine(account_id):
                self._enqueue(account_id, Job("reconcile"))

    async def give_up(self, partition: int) -> None:
        """A partition given up or lost (CLUSTER mode): stop the workers of its accounts; its new owner resolves
        whatever they had in flight by client order id."""
        assert self.scope is not None
        for account_id in {*self.workers, *self._starting}:
            if self.scope.partition(account_id) == partition:
                await self.close_account(account_id)

    async def stop(self) -> None:
        for task in self._starting.values():
            task.cancel()
        for worker in list(self.workers.values()):
            await worker.stop()
        self.workers.clear()
        self._starting.clear()

    async def idle(self) -> None:
        """Wait until every worker's queue is empty (tests)."""
        await asyncio.sleep(0)
        for task in list(self._starting.values()):
            with contextlib.suppress(Exception):
                await task
        for worker in list(self.workers.values()):
            await worker.idle()

    # ---- recording ----------------------------------------------------------------------------------------------

    async def record(self, account: Account, report: VenueOrder, rules: Mapping[str, SymbolRules]) -> None:
        async with self._recording(account.id):
            events, legs = await self._write(account.id, lambda s: self._record(s, account, report, rules))
        for event in events:
            self.publish(event)
        if legs:  # one job sends the pair as one venue order list
            self._enqueue(account.id, Job("submit", legs[-1].id))

    def _record(
        self, session: Session, account: Account, report: VenueOrder, rules: Mapping[str, SymbolRules]
    ) -> tuple[list[UserEvent], list[OrderRecord]]:
        changes = Changes()
        order = find_order(session, account, report)
        if order is None:
            order = imported(account, report)
            self.recorder.new_order(order, changes)
        legs: list[OrderRecord] = []
        symbol_rules = rules.get(order.symbol)
        if symbol_rules is None:
            log.warning("no symbol rules for %s: report of order %s not recorded", order.symbol, order.id)
        else:
            known = orders.trade_ids_of(session, order.id)
            legs = self.recorder.record(
                order, as_report(order.id, report), symbol_rules, positions_in(session), changes, known
            )
        batch_writes.write(session, changes)
        return changes.events, legs

    async def mark_sent(self, account: Account, order_ids: list[str]) -> list[OrderRecord]:
        """Persist before send: the committed `sent_at` means "may be at the venue" to any later recovery. All of
        `order_ids` (one order, or a bracket's two legs) must still be PENDING; if the user asked to cancel, they
        end CANCELED instead and nothing is sent."""

        def mark(session: Session) -> tuple[list[OrderRecord], list[UserEvent]]:
            records = [OrderRecord.from_row(row) for row in orders.rows_by_ids(session, order_ids)]
            if not records or any(r.status != OrderStatus.PENDING for r in records):
                return [], []
            changes = Changes()
            if any(r.cancel_requested_at is not None for r in records):
                for record in records:
                    self.recorder.transition(record, OrderStatus.CANCELED, "canceled before execution", changes)
                batch_writes.write(session, changes)
                return [], changes.events
            # The kill switch may have changed since intake accepted the order(s): checked against the stored
            # position, in this transaction.
            position = positions_in(session)
            for record in records:
                stopped = self.recorder.trading.at_execution(record, position(account.id, record.symbol).quantity)
                if stopped is not None:
                    for each in records:
                        self.recorder.transition(each, stopped[0], stopped[1], changes)
                    batch_writes.write(session, changes)
                    return [], changes.events
            now = now_ms()
            for record in records:
                record.sent_at = now
                changes.update(record)
            batch_writes.write(session, changes)
            return records, []

        async with self._recording(account.id):
            records, events = await self._write(account.id, mark)
        for event in events:
            self.publish(event)
        return records

    async def unmark_sent(self, account: Account, order_ids: list[str]) -> None:
        """The venue refused to take the request (429): the orders were never there."""

        def unmark(session: Session) -> None:
            changes = Changes()
            for row in orders.rows_by_ids(session, order_ids):
                record = OrderRecord.from_row(row)
                if record.status == OrderStatus.PENDING:
                    record.sent_at = None
                    changes.update(record)
            batch_writes.write(session, changes)

        await self._write(account.id, unmark)

    async def record_status(self, account: Account, order_id: str, status: OrderStatus, reason: str | None) -> None:
        """A status decided here (the venue refused the order), if the state machine allows it."""

        def apply(session: Session) -> list[UserEvent]:
            changes = Changes()
            for row in orders.rows_by_ids(session, [order_id]):
                self.recorder.transition(OrderRecord.from_row(row), status, reason, changes)
            batch_writes.write(session, changes)
            return changes.events

        await self._write_events(account.id, apply)

    async def mirror_balances(self, account: Account, balances: list[VenueBalance]) -> None:
        """Testnet balances come from the exchange: copy its snapshot, then tell the user."""
        await self._write_events(account.id, lambda session: mirror_balances_in(session, account, balances))

    async def notice(self, account: Account, code: str, message: str, retry_after: float) -> None:
        data = {"account_id": account.id, "code": code, "message": message, "retry_after": retry_after}

        def store(session: Session) -> list[UserEvent]:
            changes = Changes()
            changes.event(account.user_id, "NOTICE", data, now_ms())
            batch_writes.write(session, changes)
            return changes.events

        await self._write_events(account.id, store)

    async def _write_events(self, account_id: str, work: Callable[[Session], list[UserEvent]]) -> None:
        """One recording transaction for the account (after its others), then its events published."""
        async with self._recording(account_id):
            events = await self._write(account_id, work)
        for event in events:
            self.publish(event)
