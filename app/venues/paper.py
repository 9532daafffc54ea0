"""The paper venue: the built-in exchange. Like a real one it owns matching (`PaperMatcher`, pure), funds
(`PaperLedger`: balances, locks, fees) and refusals ("insufficient balance"), and it answers every call with
`Report`s, the same shape the Binance adapter's answers are turned into, so one recorder handles both.

It runs only inside the execution engine's batches (one caller at a time, on the event loop)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from app.domain import Liquidity, OrderStatus, OrderType, Side, SymbolRules, TimeInForce
from app.execution.records import Execution, OrderRecord, Report
from app.market.models import Depth, Trade
from app.market.state import MarketState
from app.portfolio import Requirement, fee_for, reservation
from app.venues.paper_book import TakerBook, crosses
from app.venues.paper_ledger import PaperLedger
from app.venues.paper_matching import WOULD_TAKE, WOULD_TRIGGER, MatchOrder, MatchResult, PaperMatcher, trigger_fires

log = logging.getLogger(__name__)

UNAFFORDABLE_AT_TRIGGER = "Insufficient balance when the order triggered."
REPLACED_NOT_OPEN = "The order it replaces is no longer open."


def match_order(order: OrderRecord) -> MatchOrder:
    return MatchOrder(
        id=order.id,
        symbol=order.symbol,
        side=Side.of(order.side),
        type=OrderType.of(order.type),
        time_in_force=TimeInForce.of(order.time_in_force) if order.time_in_force else None,
        quantity=order.quantity,
        quote_quantity=order.quote_quantity,
        price=order.price,
        stop_price=order.stop_price,
        filled_quantity=order.filled_quantity,
        oco_group=order.oco_group,
        triggered=order.triggered_at is not None,
        trailing_delta_bps=order.trailing_delta_bps,
    )


class PaperVenue:
    name = "paper"

    def __init__(
        self,
        state: MarketState,
        rules: Mapping[str, SymbolRules],
        *,
        seed: int,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
    ) -> None:
        self.state = state
        self.rules = rules
        self.seed = seed
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.ledger = PaperLedger()
        self.matcher = PaperMatcher(rules, seed=seed)
        self._live: dict[str, OrderRecord] = {}  # resting or waiting orders, by id
        self._groups: dict[str, set[str]] = {}  # oco group -> live order ids

    def reset_book(self) -> None:
        """Forget every resting order and every balance (before restoring them from the database)."""
        self.matcher = PaperMatcher(self.rules, seed=self.seed)
        self.ledger.forget_all()
        self._live.clear()
        self._groups.clear()

    # ---- orders -------------------------------------------------------------------------------------------

    def submit(self, order: OrderRecord, ts: int) -> list[Report]:
        """Accept a PENDING order: lock its funds, match what is marketable now. A market order locks nothing: it
        is matched, and its fills are checked against the free balance before any money moves (`_settle`)."""
        matching = match_order(order)
        if matching.type is not OrderType.MARKET:
            need = reservation(order, self.rules[order.symbol], OrderStatus.OPEN, order.filled_quantity)
            if not self.ledger.lock(order.id, order.account_id, need):
                return [Report(order.id, OrderStatus.REJECTED, reason=_insufficient(need))]
        self._track(order)
        result = self.matcher.submit(matching, self._depth(order.symbol), self._last(order.symbol), ts)
        return self._settle_all([*result.related, result])

    def replace(self, order: OrderRecord, ts: int) -> list[Report]:
        """Modify/replace, as Binance's cancelReplace with STOP_ON_FAILURE: the order `order.replaces` leaves the book
        (REPLACED, its lock released), then `order` is submitted; if that one is no longer working, `order` is
        rejected and nothing else changes."""
        old = self._live.get(order.replaces or "")
        if old is None or old.account_id != order.account_id:
            return [Report(order.id, OrderStatus.REJECTED, reason=REPLACED_NOT_OPEN)]
        canceled = self.cancel(old.id, f"replaced by order {order.id}")
        replaced = [replace(r, status=OrderStatus.REPLACED) if r.order_id == old.id else r for r in canceled]
        return [*replaced, *self.submit(order, ts)]

    def submit_list(self, orders: list[OrderRecord], ts: int) -> list[Report]:
        """Accept an order list (OCO: a bracket's exits, a stand-alone OCO) whole or not at all, as Binance does: if
        one leg would trigger at once, or the limit leg would take (Binance places it as LIMIT_MAKER), every leg is
        rejected with that reason."""
        if not orders:
            return []
        last = self._last(orders[0].symbol)
        depth = self._depth(orders[0].symbol)
        reason = next((r for r in (self._list_refusal(o, last, depth) for o in orders) if r is not None), None)
        if reason is not None:
            return [Report(o.id, OrderStatus.REJECTED, reason=reason) for o in orders]
        return [report for order in orders for report in self.submit(order, ts)]

    def _list_refusal(self, order: OrderRecord, last: Decimal | None, depth: Depth | None) -> str | None:
        kind = OrderType.of(order.type)
        if (
            kind is OrderType.LIMIT
            and order.price is not None
            and crosses(TakerBook(depth, order.symbol), Side.of(order.side), order.price)
        ):
            return WOULD_TAKE
        if kind.has_stop_price and last is not None and trigger_fires(match_order(order), last):
            return WOULD_TRIGGER
        return None

    def on_trade(self, trade: Trade) -> list[Report]:
        """A public trade printed: resting limits it reaches fill, stops/take-profits it crosses fire."""
        return self._settle_all(self.matcher.on_trade(trade, self._depth(trade.symbol)))

    def cancel(self, order_id: str, reason: str) -> list[Report]:
        """Cancel a live order and the other legs of its OCO group; [] if it is not live (already ended)."""
        order = self._live.get(order_id)
        if order is None:
            return []
        targets = [order_id, *sorted(self._groups.get(order.oco_group or "", set()) - {order_id})]
        results = []
        for target in targets:
            self.matcher.cancel(target)
            results.append(MatchResult(target, OrderStatus.CANCELED, reason=reason))
        return self._settle_all(results)

    def cancel_account(self, account_id: str, reason: str) -> list[Report]:
        ids = [order.id for order in self._live.values() if order.account_id == account_id]
        return [report for order_id in ids for report in self.cancel(order_id, reason)]

    def restore(self, order: OrderRecord) -> None:
        """Start-up: an order resting before the restart rests again, with its lock (already in the balances)."""
        self.matcher.restore(match_order(order))
        self._track(order)
        status = OrderStatus.of(order.status)
        need = reservation(order, self.rules[order.symbol], status, order.filled_quantity)
        self.ledger.restore_lock(order.id, order.account_id, need)

    def has_live_orders(self, symbol: str) -> bool:
        return self.matcher.has_live_orders(symbol)

    def open_order_ids(self) -> set[str]:
        return {order.id for order in self.matcher.open_orders()}

    # ---- settlement: a matcher result becomes a report, and money moves -------------------------------------

    def _settle_all(self, results: list[MatchResult]) -> list[Report]:
        # Ends without fills first: an OCO leg's end releases the lock the other leg's fill draws on.
        ordered = sorted(results, key=lambda r: bool(r.fills) or not r.status.is_terminal)
        reports = []
        for result in ordered:
            order = self._live.get(result.order_id)
            if order is None:
                log.error("matcher reported unknown order %s", result.order_id)
                continue
            reports.append(self._settle(order, result))
        return reports

    def _settle(self, order: OrderRecord, result: MatchResult) -> Report:
        rules = self.rules[order.symbol]
        side = Side.of(order.side)
        status, reason, fills = result.status, result.reason, result.fills
        self.ledger.release(order.id)
        shortfall = self._shortfall(order, result, rules) if fills else None
        if shortfall is not None:
            # A market order just submitted is refused; a stop/take-profit that fired expires, as Binance reports them.
            fresh = order.status == OrderStatus.PENDING
            status = OrderStatus.REJECTED if fresh else OrderStatus.EXPIRED
            reason = _insufficient(shortfall) if fresh else UNAFFORDABLE_AT_TRIGGER
            fills = ()
            self.matcher.cancel(order.id)
        executions = []
        filled = order.filled_quantity
        for match in fills:
            rate = self.maker_fee if match.liquidity == Liquidity.MAKER else self.taker_fee
            fee, fee_asset = fee_for(side, match.price, match.quantity, rate, rules)
            self.ledger.trade(order.account_id, rules, side, match.price, match.quantity, fee)
            executions.append(Execution(match.price, match.quantity, fee, fee_asset, match.liquidity, match.ts))
            filled += match.quantity
        if status.is_terminal:
            self._untrack(order)
        elif not self.ledger.lock(order.id, order.account_id, reservation(order, rules, status, filled)):
            log.error("order %s could not re-lock its remaining funds", order.id)
        return Report(order.id, status, tuple(executions), reason, result.triggered)

    def _shortfall(self, order: OrderRecord, result: MatchResult, rules: SymbolRules) -> Requirement | None:
        """What the fills of a market order (or of a stop/take-profit that fired) spend, when the free balance does
        not cover it: a market order locks nothing beforehand, so it is checked here, before any money moves."""
        side = Side.of(order.side)
        asset = rules.quote if side is Side.BUY else rules.base
        needed = sum(((f.price * f.quantity) if side is Side.BUY else f.quantity for f in result.fills), Decimal(0))
        return None if self.ledger.free(order.account_id, asset) >= needed else Requirement(asset, needed)

    def _track(self, order: OrderRecord) -> None:
        self._live[order.id] = order
        if order.oco_group is not None:
            self._groups.setdefault(order.oco_group, set()).add(order.id)

    def _untrack(self, order: OrderRecord) -> None:
        self._live.pop(order.id, None)
        if order.oco_group is not None:
            group = self._groups.get(order.oco_group)
            if group is not None:
                group.discard(order.id)
                if not group:
                    del self._groups[order.oco_group]

    def _depth(self, symbol: str) -> Depth | None:
        return self.state.depth(symbol, limit=1000)

    def _last(self, symbol: str) -> Decimal | None:
        return self.state.last_price(symbol)


def _insufficient(need: Requirement) -> str:
    return f"Insufficient balance: needs {need.amount.normalize():f} {need.asset}."
