"""The execution engine: the background task that drains the order queue.

Commands (ids only, never order data) arrive on one asyncio.Queue. The engine takes them in batches and applies a
batch in ONE database transaction: every status change, fill, fee, balance move, lock and event of the batch
commits together, then the events are published. Batching is what makes thousands of orders per second possible
on SQLite; a crash loses nothing, because a command whose effects did not commit still finds its order PENDING
(or still open with a cancel request) at start-up and is queued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from sqlmodel import Session

from app.brackets import exit_legs
from app.domain import OrderStatus, OrderType, Side, SymbolRules, Venue, check_transition, floor_to_step
from app.events import UserEvent
from app.external_execution import ExternalExecution
from app.ids import new_id, now_ms
from app.market.models import Trade
from app.orders import store_event
from app.portfolio import Requirement, apply_fill, fee_for, fee_rate, release_lock, reservation, take_lock
from app.venues.paper import PaperVenue
from app.venues.paper_matching import MatchResult
from app.views import balance_data, fill_data, order_data
from storage.db import Database
from storage.models import Fill, Order
from storage.repositories import accounts, orders

log = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class Submit:
    order_id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    order_id: str


@dataclass(frozen=True, slots=True)
class MarketTrade:
    trade: Trade


@dataclass(frozen=True, slots=True)
class ResetAccount:
    account_id: str
    balances: Mapping[str, Decimal]
    done: asyncio.Future[None] = field(compare=False)


Command = Submit | Cancel | MarketTrade | ResetAccount


@dataclass
class _Batch:
    """What one transaction produced: events to publish after commit, accounts whose balances moved."""

    events: list[UserEvent] = field(default_factory=list)
    dirty_accounts: dict[str, str] = field(default_factory=dict)  # account id -> user id
    preloaded: list[Order] = field(default_factory=list)  # strong references for the session's identity map


class ExecutionEngine:
    def __init__(
        self,
        db: Database,
        paper: PaperVenue,
        publish: Callable[[UserEvent], None],
        *,
        maker_fee: Decimal,
        taker_fee: Decimal,
        external: ExternalExecution | None = None,
    ) -> None:
        self.db = db
        self.paper = paper
        self.rules: Mapping[str, SymbolRules] = paper.rules
        self.publish = publish
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.external = external
        self.queue: asyncio.Queue[Command] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.processed = 0

    # ---- the queue (called by OrderService, the market feed and the API) ------------------------------------

    def submit(self, order_id: str, account_id: str = "", venue: str = Venue.PAPER) -> None:
        if venue == Venue.PAPER:
            self.queue.put_nowait(Submit(order_id))
        elif self.external is not None:
            self.external.submit(order_id, account_id)

    def cancel(self, order_id: str, account_id: str = "", venue: str = Venue.PAPER) -> None:
        if venue == Venue.PAPER:
            self.queue.put_nowait(Cancel(order_id))
        elif self.external is not None:
            self.external.cancel(order_id, account_id)

    def on_market_trade(self, trade: Trade) -> None:
        self.queue.put_nowait(MarketTrade(trade))

    async def reset_account(self, account_id: str, balances: Mapping[str, Decimal]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(ResetAccount(account_id, balances, done))
        await done

    # ---- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.recover()
        self._task = asyncio.create_task(self._run(), name="execution-engine")
        if self.external is not None:
            await self.external.start()

    async def stop(self) -> None:
        if self.external is not None:
            await self.external.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def recover(self) -> None:
        """Start-up: rebuild the paper book from open orders, re-queue PENDING orders and pending cancels."""

        def load(session: Session) -> tuple[list[Order], list[Order]]:
            live = orders.in_statuses_for_venue(session, Venue.PAPER, ("OPEN", "PARTIALLY_FILLED"))
            pending = orders.in_statuses_for_venue(session, Venue.PAPER, ("PENDING",))
            return live, pending

        live, pending = await self.db.read(load)
        self.paper.reset_book()
        for order in live:
            self.paper.restore(order)
        for order in pending:
            self.submit(order.id)
        for order in live:
            if order.cancel_requested_at is not None:
                self.cancel(order.id)
        if live or pending:
            log.info("recovered %d open and %d pending paper orders", len(live), len(pending))

    async def drain(self) -> None:
        """Wait until every queued command is processed (tests and benchmarks)."""
        await self.queue.join()

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._process(batch)
            except Exception:
                log.exception("execution batch failed")
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _process(self, batch: list[Command]) -> None:
        # Most public trades touch no paper order: skip their (empty) transaction. Safe to read the book here,
        # between batches, because only this task's own awaited batch changes it.
        batch = [c for c in batch if not isinstance(c, MarketTrade) or self.paper.has_live_orders(c.trade.symbol)]
        if not batch:
            return
        try:
            result = await self.db.write(lambda session: self._apply(session, batch))
        except Exception:
            if len(batch) == 1:
                await self._fail(batch[0])
                return
            # The transaction rolled back but the in-memory book moved: rebuild it, then isolate the bad command.
            log.exception("batch of %d failed; retrying one by one", len(batch))
            await self._rebuild_book()
            for command in batch:
                await self._process([command])
            return
        self.processed += len(batch)
        for command in batch:
            if isinstance(command, ResetAccount) and not command.done.done():
                command.done.set_result(None)
        for event in result.events:
            self.publish(event)

    async def _fail(self, command: Command) -> None:
        """A single command that cannot be applied: reject its order rather than retrying forever."""
        log.exception("command %s failed", command)
        await self._rebuild_book()
        if isinstance(command, ResetAccount):
            if not command.done.done():
                command.done.set_exception(RuntimeError("paper reset failed"))
            return
        if isinstance(command, Submit):
            order_id = command.order_id

            def reject(session: Session) -> _Batch:
                batch = _Batch()
                order = orders.get_for_update(session, order_id)
                if order is not None and order.status == OrderStatus.PENDING:
                    self._transition(session, batch, order, OrderStatus.REJECTED, "internal error; nothing executed")
                return batch

            result = await self.db.write(reject)
            for event in result.events:
                self.publish(event)

    async def _rebuild_book(self) -> None:
        live = await self.db.read(lambda s: orders.in_statuses_for_venue(s, "paper", ("OPEN", "PARTIALLY_FILLED")))
        self.paper.reset_book()
        for order in live:
            self.paper.restore(order)

    # ---- one transaction ------------------------------------------------------------------------------------

    def _apply(self, session: Session, commands: list[Command]) -> _Batch:
        batch = _Batch()
        ids = [c.order_id for c in commands if isinstance(c, Submit | Cancel)]
        # One query warms the identity map for the whole batch. The map holds objects weakly: keep the list alive
        # until the batch is done, or every later lookup would be a query again.
        batch.preloaded = orders.load(session, ids) if ids else []
        # Autoflush before every query would flush (and scan) the whole growing batch each time: flush explicitly.
        with session.no_autoflush:
            for command in commands:
                if isinstance(command, Submit):
                    self._submit(session, batch, command.order_id)
                elif isinstance(command, Cancel):
                    self._cancel(session, batch, command.order_id)
                elif isinstance(command, MarketTrade):
                    self._apply_results(session, batch, self.paper.on_trade(command.trade))
                else:
                    self._reset(session, batch, command)
        session.flush()
        now = now_ms()
        for account_id, user_id in batch.dirty_accounts.items():
            data = {
                "account_id": account_id,
                "balances": [balance_data(b) for b in accounts.balances(session, account_id)],
            }
            batch.events.append(store_event(session, user_id, "BALANCE_UPDATE", data, now))
        return batch

    def _submit(self, session: Session, batch: _Batch, order_id: str) -> None:
        order = orders.get_for_update(session, order_id)
        if order is None or order.status != OrderStatus.PENDING:
            return  # already executed (a recovery duplicate) or gone
        if order.cancel_requested_at is not None:
            self._transition(session, batch, order, OrderStatus.CANCELED, "canceled before execution")
            return
        rules = self.rules[order.symbol]
        need, atomic = self._initial_requirement(order, rules)
        if need is not None:
            if atomic:
                available = accounts.balance_for_update(session, order.account_id, need.asset).free
                enough = available >= need.amount
            else:
                enough = take_lock(session, order, need)
                batch.dirty_accounts[order.account_id] = order.user_id
            if not enough:
                reason = f"Insufficient balance: needs {need.amount.normalize():f} {need.asset}."
                self._transition(session, batch, order, OrderStatus.REJECTED, reason)
                return
        order.sent_at = now_ms()
        result = self.paper.submit(order, order.sent_at)
        self._apply_results(session, batch, [*result.related, result])

    def _initial_requirement(self, order: Order, rules: SymbolRules) -> tuple[Requirement | None, bool]:
        """(funds to check, atomic?) — market orders are checked against what they would take now, others lock."""
        side = Side(order.side)
        if OrderType(order.type) is OrderType.MARKET:
            takes = self.paper.preview(order)
            if not takes:
                return None, True  # the matcher rejects it: no liquidity
            if side is Side.BUY:
                return Requirement(rules.quote, sum((p * q for p, q in takes), Decimal(0))), True
            return Requirement(rules.base, sum((q for _, q in takes), Decimal(0))), True
        pending = order.model_copy(update={"status": OrderStatus.OPEN})
        return reservation(pending, rules), False

    def _apply_results(self, session: Session, batch: _Batch, results: list[MatchResult]) -> None:
        # Cancellations first: an OCO leg's cancel releases the lock the other leg's fill draws on.
        ordered = sorted(results, key=lambda r: r.status != OrderStatus.CANCELED)
        for result in ordered:
            order = orders.get_for_update(session, result.order_id)
            if order is None:
                log.error("matcher reported unknown order %s", result.order_id)
                continue
            self._record(session, batch, order, result)

    def _record(self, session: Session, batch: _Batch, order: Order, result: MatchResult) -> None:
        """Apply one matcher result to the order, balances, positions and the event log."""
        rules = self.rules[order.symbol]
        side = Side(order.side)
        status = OrderStatus(result.status)
        reason = result.reason
        fills = result.fills
        release_lock(session, order)
        batch.dirty_accounts[order.account_id] = order.user_id
        if fills and not self._affordable(session, order, result, rules):
            status, reason, fills = OrderStatus.EXPIRED, "Insufficient balance when the order triggered.", ()
            self.paper.cancel(order.id)
        for match in fills:
            rate = fee_rate(match.liquidity, self.maker_fee, self.taker_fee)
            fee, fee_asset = fee_for(side, match.price, match.quantity, rate, rules)
            fill = Fill(
                id=new_id(),
                order_id=order.id,
                user_id=order.user_id,
                account_id=order.account_id,
                symbol=order.symbol,
                side=order.side,
                price=match.price,
                quantity=match.quantity,
                fee=fee,
                fee_asset=fee_asset,
                liquidity=match.liquidity,
                # Paper trade ids restart with the process; the venue key de-duplicates exchange trades only.
                venue_trade_id=None,
                ts=match.ts,
            )
            orders.add_fill(session, fill)
            apply_fill(session, order, fill, rules)
            batch.events.append(store_event(session, order.user_id, "FILL", fill_data(fill), fill.ts))
        newly_triggered = result.triggered and order.triggered_at is None
        if newly_triggered:
            order.triggered_at = now_ms()
        changed = status != order.status
        if changed:
            check_transition(OrderStatus(order.status), status)
            order.status = status
            if status in (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELED):
                order.reject_reason = reason
        if not status.is_terminal and not take_lock(session, order, reservation(order, rules)):
            log.error("order %s could not re-lock its remaining funds", order.id)
        order.updated_at = now_ms()
        session.add(order)
        if changed or fills or newly_triggered:
            batch.events.append(
                store_event(session, order.user_id, "ORDER_UPDATE", order_data(order), order.updated_at)
            )
        if status is OrderStatus.FILLED and order.take_profit_price is not None and order.parent_id is None:
            self._place_bracket(session, batch, order, rules)

    def _affordable(self, session: Session, order: Order, result: MatchResult, rules: SymbolRules) -> bool:
        """A triggered stop/take-profit market order spends at trigger time; it may no longer be covered."""
        side = Side(order.side)
        asset = rules.quote if side is Side.BUY else rules.base
        needed = sum(((f.price * f.quantity) if side is Side.BUY else f.quantity for f in result.fills), Decimal(0))
        return accounts.balance_for_update(session, order.account_id, asset).free >= needed

    def _transition(
        self, session: Session, batch: _Batch, order: Order, status: OrderStatus, reason: str | None
    ) -> None:
        self._record(session, batch, order, MatchResult(order.id, status, reason=reason))

    def _place_bracket(self, session: Session, batch: _Batch, entry: Order, rules: SymbolRules) -> None:
        """The entry filled: create its OCO exit pair (take-profit LIMIT + stop-loss STOP_MARKET) and submit it."""
        received = entry.filled_quantity - (entry.fee if Side(entry.side) is Side.BUY else Decimal(0))
        quantity = floor_to_step(received, rules.step_size)
        if quantity < rules.min_qty:
            log.warning("bracket of %s skipped: %s is below the minimum quantity", entry.id, quantity)
            return
        for leg in exit_legs(entry, quantity):
            orders.add(session, leg)
            batch.events.append(store_event(session, leg.user_id, "ORDER_UPDATE", order_data(leg), leg.created_at))
            self._submit(session, batch, leg.id)

    def _cancel(self, session: Session, batch: _Batch, order_id: str) -> None:
        order = orders.get_for_update(session, order_id)
        if order is None or OrderStatus(order.status).is_terminal:
            return
        if order.status == OrderStatus.PENDING:
            return  # its Submit is still queued and will see the cancel request
        for target in [order, *orders.siblings(session, order)]:
            if OrderStatus(target.status).is_open and target.status != OrderStatus.PENDING:
                self.paper.cancel(target.id)
                self._transition(session, batch, target, OrderStatus.CANCELED, "canceled by the user")

    def _reset(self, session: Session, batch: _Batch, command: ResetAccount) -> None:
        account = accounts.get(session, command.account_id)
        if account is None:
            return
        for order in orders.open_for_account(session, account.id):
            self.paper.cancel(order.id)
            self._transition(session, batch, order, OrderStatus.CANCELED, "paper account reset")
        accounts.set_balances(session, account.id, command.balances)
        orders.delete_positions(session, account.id)
        batch.dirty_accounts[account.id] = account.user_id
