"""Execution on exchange venues (Binance Spot Testnet): one worker per account, so a slow or throttled account
never holds up another, and its commands keep their order.

The rules of DESIGN.md §3, in code:
- persist before send: the order's `sent_at` is committed before the venue call; the venue sees our deterministic
  client order id (`tw<order id>`), so a repeated send can never create a second order;
- an ambiguous outcome (timeout, 5xx, dropped connection) is not a rejection: the order stays in flight and is
  resolved by asking the venue for that client order id — re-sent only if the venue says it never arrived;
- 429/418: the account pauses for Retry-After (the user is told with a NOTICE event), the order waits;
- fills are recorded one by one, de-duplicated by the venue's trade id, whichever path reports them first
  (the order response, the user-data stream, or a reconciliation);
- at start-up and periodically, every order that may be at the venue is looked up, and orders the venue has but
  we do not are imported as external;
- a bracket (take_profit_price + stop_loss_price) gets its exits when the entry fills: two PENDING legs sharing an
  `oco_group`, sent together as one venue order list (Binance OCO), so one filling cancels the other at the venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session

from app.brackets import exit_legs
from app.domain import ALLOWED_TRANSITIONS, OrderStatus, OrderType, SymbolRules, Venue, floor_to_step, fmt
from app.errors import VenueRejected, VenueThrottled, VenueUnavailable
from app.events import UserEvent
from app.ids import VENUE_CLIENT_ID_PREFIX, new_id, now_ms, venue_client_order_id
from app.orders import store_event
from app.portfolio import apply_fill
from app.venues.base import ExternalVenue, OcoSpec, OrderSpec, VenueBalance, VenueOrder
from app.venues.directory import VenueDirectory
from app.views import balance_data, fill_data, order_data
from storage.db import Database
from storage.models import Account, Fill, Order
from storage.repositories import accounts, orders

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True)
class Job:
    kind: str  # submit | cancel | resolve | reconcile
    order_id: str | None = None


class AccountWorker:
    """Owns one exchange account's venue client, its command queue and its user-data stream."""

    def __init__(self, host: ExternalExecution, account: Account, venue: ExternalVenue) -> None:
        self.host = host
        self.account = account
        self.venue = venue
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.rules: Mapping[str, SymbolRules] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.rules = await self.venue.load_rules()
        self.host.venues.remember_rules(self.rules)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"venue-{self.account.id}"),
            asyncio.create_task(self.venue.watch(self._on_stream_order, self._on_balances), name="user-data"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.venue.close()

    async def idle(self) -> None:
        await self.jobs.join()

    async def _work(self) -> None:
        while True:
            job = await self.jobs.get()
            try:
                await self._run(job)
            except Exception:
                log.exception("job %s of account %s failed", job, self.account.id)
            finally:
                self.jobs.task_done()

    async def _run(self, job: Job) -> None:
        if job.kind == "submit" and job.order_id:
            await self._submit(job.order_id)
        elif job.kind == "cancel" and job.order_id:
            await self._with_retries(lambda: self._cancel(job.order_id))  # type: ignore[arg-type]
        elif job.kind == "resolve" and job.order_id:
            await self._resolve(job.order_id)
        elif job.kind == "reconcile":
            await self._with_retries(self._reconcile)

    # ---- submit -------------------------------------------------------------------------------------------------

    async def _submit(self, order_id: str) -> None:
        leg = await self.host.db.read(lambda s: orders.get(s, order_id))
        if leg is not None and leg.oco_group is not None:
            await self._submit_oco(leg.oco_group, order_id)
            return
        order, events = await self.host.db.write(lambda s: self._mark_sent(s, order_id))
        for event in events:
            self.host.publish(event)
        if order is None:
            return
        spec = OrderSpec(
            client_order_id=venue_client_order_id(order.id),
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            quantity=order.quantity,
            quote_quantity=order.quote_quantity,
            price=order.price,
            stop_price=order.stop_price,
            time_in_force=order.time_in_force,
        )
        try:
            report = await self.venue.submit(spec)
        except VenueRejected as exc:
            await self.host.record_status(self.account, order_id, OrderStatus.REJECTED, exc.message)
        except VenueThrottled as exc:
            await self.host.db.write(lambda s: self._unmark_sent(s, order_id))
            await self._pause(exc)
            await self._submit(order_id)
        except VenueUnavailable:
            log.warning("order %s is in flight after a venue failure; resolving by client order id", order_id)
            await self._resolve(order_id)
        else:
            await self.host.record(self.account, report, self.rules)

    def _mark_sent(self, session: Session, order_id: str) -> tuple[Order | None, list[UserEvent]]:
        """Persist before send: the committed `sent_at` means "may be at the venue" to any later recovery."""
        order = orders.get_for_update(session, order_id)
        if order is None or order.status != OrderStatus.PENDING:
            return None, []
        if order.cancel_requested_at is not None:
            return None, self.host.set_status(session, order, OrderStatus.CANCELED, "canceled before execution")
        order.sent_at = now_ms()
        session.add(order)
        return order, []

    def _unmark_sent(self, session: Session, order_id: str) -> None:
        order = orders.get_for_update(session, order_id)
        if order is not None and order.status == OrderStatus.PENDING:
            order.sent_at = None
            session.add(order)

    async def _resolve(self, order_id: str) -> None:
        """An order that may be at the venue: ask for it by client order id; re-send only if it never arrived."""
        order = await self.host.db.read(lambda s: orders.get(s, order_id))
        if order is None:
            return
        if order.oco_group is not None:
            await self._resolve_oco(order.oco_group, order_id)
            return
        report = await self._fetch_until_answered(order.symbol, venue_client_order_id(order.id))
        if report is not None:
            await self.host.record(self.account, report, self.rules)
            return
        if order.status == OrderStatus.PENDING:
            await self.host.db.write(lambda s: self._unmark_sent(s, order_id))
            await self._submit(order_id)  # the venue never saw it: sending the same client order id is safe

    async def _fetch_until_answered(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """fetch_order, retried (with backoff, or the venue's Retry-After) until the venue answers definitively."""
        delay = 0.5
        while True:
            try:
                return await self.venue.fetch_order(symbol, client_order_id)
            except VenueThrottled as exc:
                await self._pause(exc)
            except VenueUnavailable:
                await self.host.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    # ---- brackets: the exit pair as one venue OCO ---------------------------------------------------------------

    async def _submit_oco(self, group: str, order_id: str) -> None:
        """Send both exits of a bracket in one order list. Persist before send, as for single orders: both legs get
        `sent_at` first; an ambiguous failure is resolved by looking both legs up by client order id."""
        legs, events = await self.host.db.write(lambda s: self._mark_legs_sent(s, order_id))
        for event in events:
            self.host.publish(event)
        if not legs:
            return
        take_profit = next(leg for leg in legs if leg.type == OrderType.LIMIT)
        stop_loss = next(leg for leg in legs if leg.type == OrderType.STOP_MARKET)
        assert take_profit.price is not None and stop_loss.stop_price is not None and stop_loss.quantity is not None
        spec = OcoSpec(
            list_client_order_id=venue_client_order_id(group),
            symbol=stop_loss.symbol,
            side=stop_loss.side,
            quantity=stop_loss.quantity,
            take_profit_client_order_id=venue_client_order_id(take_profit.id),
            take_profit_price=take_profit.price,
            stop_loss_client_order_id=venue_client_order_id(stop_loss.id),
            stop_price=stop_loss.stop_price,
        )
        try:
            reports = await self.venue.submit_oco(spec)
        except VenueRejected as exc:
            for leg in legs:
                await self.host.record_status(self.account, leg.id, OrderStatus.REJECTED, exc.message)
        except VenueThrottled as exc:
            await self.host.db.write(lambda s: self._unmark_legs(s, legs))
            await self._pause(exc)
            await self._submit_oco(group, order_id)
        except VenueUnavailable:
            log.warning("bracket exits %s are in flight after a venue failure; resolving by client order id", group)
            await self._resolve_oco(group, order_id)
        else:
            for report in reports:
                await self.host.record(self.account, report, self.rules)

    def _mark_legs_sent(self, session: Session, order_id: str) -> tuple[list[Order], list[UserEvent]]:
        """Both legs PENDING: mark them sent (or cancel both if the user asked). Otherwise the pair already went
        out (a duplicate job): nothing to send."""
        leg = orders.get_for_update(session, order_id)
        if leg is None:
            return [], []
        legs = [leg, *(orders.get_for_update(session, other.id) for other in orders.siblings(session, leg))]
        present = [item for item in legs if item is not None]
        if any(item.status != OrderStatus.PENDING for item in present):
            return [], []
        if any(item.cancel_requested_at is not None for item in present):
            events: list[UserEvent] = []
            for item in present:
                events += self.host.set_status(session, item, OrderStatus.CANCELED, "canceled before execution")
            return [], events
        now = now_ms()
        for item in present:
            item.sent_at = now
            session.add(item)
        return present, []

    def _unmark_legs(self, session: Session, legs: list[Order]) -> None:
        for leg in legs:
            self._unmark_sent(session, leg.id)

    async def _resolve_oco(self, group: str, order_id: str) -> None:
        """Bracket legs that may be at the venue: look each up; the list is atomic, so if neither leg arrived the
        pair is sent again (same client order ids)."""

        def load(session: Session) -> list[Order]:
            leg = orders.get(session, order_id)
            return [] if leg is None else [leg, *orders.siblings(session, leg)]

        legs = await self.host.db.read(load)
        found = False
        for leg in legs:
            report = await self._fetch_until_answered(leg.symbol, venue_client_order_id(leg.id))
            if report is not None:
                found = True
                await self.host.record(self.account, report, self.rules)
        if not found and legs and all(leg.status == OrderStatus.PENDING for leg in legs):
            await self.host.db.write(lambda s: self._unmark_legs(s, legs))
            await self._submit_oco(group, order_id)

    # ---- cancel, reconcile --------------------------------------------------------------------------------------

    async def _cancel(self, order_id: str) -> None:
        order = await self.host.db.read(lambda s: orders.get(s, order_id))
        if order is None or OrderStatus(order.status).is_terminal:
            return
        if order.status == OrderStatus.PENDING and order.sent_at is None:
            return  # the submit job will see the cancel request before sending
        client_id = venue_client_order_id(order.id) if not order.external else order.client_order_id
        try:
            report: VenueOrder | None = await self.venue.cancel(order.symbol, client_id)
        except VenueRejected:
            report = await self.venue.fetch_order(order.symbol, client_id)  # e.g. filled meanwhile: take the truth
        if report is not None:
            await self.host.record(self.account, report, self.rules)
        if order.oco_group is not None:  # the venue cancels the whole list: take the other leg's state too
            siblings = await self.host.db.read(lambda s: orders.siblings(s, order))
            for other in siblings:
                if OrderStatus(other.status).is_open and other.sent_at is not None:
                    sibling = await self.venue.fetch_order(other.symbol, venue_client_order_id(other.id))
                    if sibling is not None:
                        await self.host.record(self.account, sibling, self.rules)

    async def _reconcile(self) -> None:
        """Compare with the venue: every order of ours that may be there, every open order it has, balances."""
        ours = await self.host.db.read(lambda s: orders.open_for_account(s, self.account.id))
        for order in ours:
            if order.status == OrderStatus.PENDING and order.sent_at is None:
                continue
            client_id = order.client_order_id if order.external else venue_client_order_id(order.id)
            report = await self.venue.fetch_order(order.symbol, client_id)
            if report is not None:
                await self.host.record(self.account, report, self.rules)
            elif order.status == OrderStatus.PENDING:
                await self.jobs.put(Job("submit", order.id))  # sent_at set but never arrived
        for report in await self.venue.open_orders():
            await self.host.record(self.account, report, self.rules)
        await self._on_balances(await self.venue.balances())

    async def _with_retries(self, action: Callable[[], object]) -> None:
        delay = 0.5
        while True:
            try:
                await action()  # type: ignore[misc]
                return
            except VenueThrottled as exc:
                await self._pause(exc)
            except VenueUnavailable:
                await self.host.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def _pause(self, exc: VenueThrottled) -> None:
        await self.host.notice(self.account, "VENUE_THROTTLED", exc.message, exc.retry_after)
        await self.host.sleep(exc.retry_after)

    # ---- stream -------------------------------------------------------------------------------------------------

    async def _on_stream_order(self, report: VenueOrder) -> None:
        await self.host.record(self.account, report, self.rules)

    async def _on_balances(self, balances: list[VenueBalance]) -> None:
        await self.host.mirror_balances(self.account, balances)


class ExternalExecution:
    """Routes exchange accounts' commands to their workers; records venue reports in one transaction each."""

    def __init__(
        self,
        db: Database,
        venues: VenueDirectory,
        publish: Callable[[UserEvent], None],
        *,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.venues = venues
        self.publish = publish
        self._sleep = sleep
        self.workers: dict[str, AccountWorker] = {}
        self._starting: dict[str, asyncio.Task[AccountWorker]] = {}
        # One writer per account at a time: the worker's jobs and its user-data stream report the same orders
        # concurrently (an order's POST answer and its executionReport), and rows are not locked (PostgreSQL
        # would otherwise apply both: a transition twice, a bracket's exits twice).
        self._record_locks: dict[str, asyncio.Lock] = {}

    def _recording(self, account_id: str) -> asyncio.Lock:
        return self._record_locks.setdefault(account_id, asyncio.Lock())

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)  # type: ignore[misc]

    def submit(self, order_id: str, account_id: str) -> None:
        self._enqueue(account_id, Job("submit", order_id))

    def cancel(self, order_id: str, account_id: str) -> None:
        self._enqueue(account_id, Job("cancel", order_id))

    async def close_account(self, account_id: str) -> None:
        """A deleted exchange account: stop its worker and close its venue client (its keys are gone)."""
        starting = self._starting.pop(account_id, None)
        if starting is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(starting)
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
        asyncio.get_running_loop().create_task(self._enqueue_async(account_id, job))

    async def _enqueue_async(self, account_id: str, job: Job) -> None:
        worker = await self.worker(account_id)
        if worker is not None:
            worker.jobs.put_nowait(job)

    async def worker(self, account_id: str) -> AccountWorker | None:
        if account_id in self.workers:
            return self.workers[account_id]
        if account_id not in self._starting:
            self._starting[account_id] = asyncio.create_task(self._start_worker(account_id))
        try:
            return await asyncio.shield(self._starting[account_id])
        except Exception:
            log.exception("could not start the venue worker of account %s", account_id)
            self._starting.pop(account_id, None)
            return None

    async def _start_worker(self, account_id: str) -> AccountWorker:
        account = await self.db.read(lambda s: accounts.get(s, account_id))
        if account is None:
            raise LookupError(account_id)
        worker = AccountWorker(self, account, self.venues.open(account))
        await worker.start()
        self.workers[account_id] = worker
        return worker

    async def start(self) -> None:
        """Recovery: start a worker per exchange account and resolve everything that may be at the venue."""

        def load(session: Session) -> list[Order]:
            return orders.in_statuses_for_venue(session, Venue.BINANCE_TESTNET, ("PENDING", "OPEN", "PARTIALLY_FILLED"))

        for order in await self.db.read(load):
            if order.status == OrderStatus.PENDING and order.sent_at is None:
                self.submit(order.id, order.account_id)
            elif order.status == OrderStatus.PENDING:
                self._enqueue(order.account_id, Job("resolve", order.id))
            if order.cancel_requested_at is not None:
                self.cancel(order.id, order.account_id)
        account_ids = await self.db.read(lambda s: accounts.active_ids_for_venue(s, Venue.BINANCE_TESTNET))
        for account_id in account_ids:
            self._enqueue(account_id, Job("reconcile"))

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
        exits: list[str] = []
        async with self._recording(account.id):
            events = await self.db.write(lambda s: self._record(s, account, report, rules, exits))
        for event in events:
            self.publish(event)
        for leg_id in exits:  # one job sends the pair
            self.submit(leg_id, account.id)

    def _record(
        self,
        session: Session,
        account: Account,
        report: VenueOrder,
        rules: Mapping[str, SymbolRules],
        exits: list[str],
    ) -> list[UserEvent]:
        events: list[UserEvent] = []
        order = self._find(session, account, report)
        if order is None:
            order = self._import(session, account, report)
            events.append(store_event(session, order.user_id, "ORDER_UPDATE", order_data(order), order.created_at))
        symbol_rules = rules.get(order.symbol)
        for venue_fill in report.fills:
            if orders.fill_exists(session, account.id, venue_fill.trade_id) or symbol_rules is None:
                continue
            fill = Fill(
                id=new_id(),
                order_id=order.id,
                user_id=order.user_id,
                account_id=account.id,
                symbol=order.symbol,
                side=order.side,
                price=venue_fill.price,
                quantity=venue_fill.quantity,
                fee=venue_fill.fee,
                fee_asset=venue_fill.fee_asset,
                liquidity=venue_fill.liquidity,
                venue_trade_id=venue_fill.trade_id,
                ts=venue_fill.ts,
            )
            orders.add_fill(session, fill)
            apply_fill(session, order, fill, symbol_rules, move_balances=False)
            events.append(store_event(session, order.user_id, "FILL", fill_data(fill), fill.ts))
        changed = bool(events) and not order.external
        current = OrderStatus(order.status)
        if report.status != current and report.status in ALLOWED_TRANSITIONS[current]:
            order.status = report.status
            if report.status in (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELED):
                order.reject_reason = report.reason or order.reject_reason
            changed = True
        elif report.status != current:
            log.debug("ignoring a stale %s report for %s order %s", report.status, current, order.id)
        order.venue_order_id = report.venue_order_id or order.venue_order_id
        if changed:
            order.updated_at = now_ms()
            session.add(order)
            events.append(store_event(session, order.user_id, "ORDER_UPDATE", order_data(order), order.updated_at))
        if (
            changed
            and order.status == OrderStatus.FILLED
            and order.take_profit_price is not None
            and order.stop_loss_price is not None
            and order.parent_id is None
            and not order.external
            and symbol_rules is not None
        ):
            events += self._create_exits(session, order, symbol_rules, exits)
        return events

    def _create_exits(self, session: Session, entry: Order, rules: SymbolRules, exits: list[str]) -> list[UserEvent]:
        """The entry filled: store its exit pair (take-profit LIMIT + stop-loss STOP_MARKET, one oco_group) in the
        entry's transaction; `exits` gets the id whose job sends the pair as one venue OCO."""
        received = entry.filled_quantity - (entry.fee if entry.fee_asset == rules.base else Decimal(0))
        quantity = floor_to_step(received, rules.step_size)
        assert entry.take_profit_price is not None and entry.stop_loss_price is not None
        lowest = min(entry.take_profit_price, entry.stop_loss_price)
        if quantity < rules.min_qty or quantity * lowest < rules.min_notional:
            message = f"Bracket exits of order {entry.id} not placed: {fmt(quantity)} {rules.base} is below the minimum"
            log.warning("%s", message)
            data = {"account_id": entry.account_id, "code": "BRACKET_SKIPPED", "message": message, "retry_after": 0}
            return [store_event(session, entry.user_id, "NOTICE", data, now_ms())]
        events: list[UserEvent] = []
        for leg in exit_legs(entry, quantity):
            orders.add(session, leg)
            events.append(store_event(session, leg.user_id, "ORDER_UPDATE", order_data(leg), leg.created_at))
        exits.append(leg.id)  # one job sends the pair as one venue order list
        return events

    def _find(self, session: Session, account: Account, report: VenueOrder) -> Order | None:
        client_id = report.client_order_id
        if client_id.startswith(VENUE_CLIENT_ID_PREFIX):
            order = orders.get_for_update(session, client_id.removeprefix(VENUE_CLIENT_ID_PREFIX))
            if order is not None and order.account_id == account.id:
                return order
        found = orders.by_client_order_id(session, account.id, client_id)
        return orders.get_for_update(session, found.id) if found is not None else None

    def _import(self, session: Session, account: Account, report: VenueOrder) -> Order:
        """An order placed at the venue outside Tradewind: tracked as external, not ignored."""
        now = now_ms()
        return orders.add(
            session,
            Order(
                id=new_id(),
                user_id=account.user_id,
                account_id=account.id,
                client_order_id=report.client_order_id[:36],
                symbol=report.symbol,
                side=report.side or "BUY",
                type=report.type or "LIMIT",
                quantity=report.quantity,
                price=report.price,
                stop_price=report.stop_price,
                status=report.status,
                venue_order_id=report.venue_order_id,
                external=True,
                sent_at=now,
                created_at=now,
                updated_at=now,
            ),
        )

    def set_status(self, session: Session, order: Order, status: OrderStatus, reason: str | None) -> list[UserEvent]:
        """A status change decided here (not reported by the venue), if the state machine allows it."""
        if status not in ALLOWED_TRANSITIONS[OrderStatus(order.status)]:
            return []
        order.status, order.reject_reason, order.updated_at = status, reason, now_ms()
        session.add(order)
        return [store_event(session, order.user_id, "ORDER_UPDATE", order_data(order), order.updated_at)]

    async def record_status(self, account: Account, order_id: str, status: OrderStatus, reason: str | None) -> None:
        def apply(session: Session) -> list[UserEvent]:
            order = orders.get_for_update(session, order_id)
            return [] if order is None else self.set_status(session, order, status, reason)

        async with self._recording(account.id):
            events = await self.db.write(apply)
        for event in events:
            self.publish(event)

    async def mirror_balances(self, account: Account, balances: list[VenueBalance]) -> None:
        """Testnet balances come from the exchange: copy its snapshot, then tell the user."""

        def apply(session: Session) -> list[UserEvent]:
            for balance in balances:
                row = accounts.balance_for_update(session, account.id, balance.asset)
                row.free, row.locked = balance.free, balance.locked
                session.add(row)
            rows = [balance_data(row) for row in accounts.balances(session, account.id) if row.free or row.locked]
            data = {"account_id": account.id, "balances": rows}
            return [store_event(session, account.user_id, "BALANCE_UPDATE", data, now_ms())]

        async with self._recording(account.id):
            events = await self.db.write(apply)
        for event in events:
            self.publish(event)

    async def notice(self, account: Account, code: str, message: str, retry_after: float) -> None:
        data = {"account_id": account.id, "code": code, "message": message, "retry_after": retry_after}
        event = await self.db.write(lambda s: store_event(s, account.user_id, "NOTICE", data, now_ms()))
        self.publish(event)
