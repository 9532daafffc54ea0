"""The one recorder: turns what a venue reports about an order (paper or Binance alike) into state transitions,
fills, position moves, bracket exits and events, collected in a batch's `Changes`.

Rules, the same for every venue:
- a status change is applied only if the state machine (app/domain.py) allows it; a report about an earlier state
  (a stale stream message, a second terminal word about an ended order) is never applied, only logged;
- a fill is recorded once: a venue that can report the same trade twice gives its durable trade id, and a fill
  whose id the order already has is skipped (fills are facts: recorded even when the status report is stale);
- positions move with every fill (average cost, fees included: app/portfolio.py);
- a bracket entry that fills gets its exits: ONE sizing rule (the quantity received, net of a fee paid in the base
  asset, floored to the step), skipped with a NOTICE when that is below the symbol's minimum quantity or notional.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from decimal import Decimal

from app.brackets import exit_legs
from app.domain import ALLOWED_TRANSITIONS, OrderStatus, OrderType, Side, SymbolRules, floor_to_step, fmt
from app.execution.changes import Changes
from app.execution.records import OrderRecord, Report
from app.ids import new_id, now_ms
from app.open_orders import OpenOrderCounts
from app.portfolio import PositionState, update_position
from app.trading_state import TradingStates
from app.views import fill_data, order_data

log = logging.getLogger(__name__)

ENDED_WITH_REASON = (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELED, OrderStatus.REPLACED)

PositionSource = Callable[[str, str], PositionState]
"""(account_id, symbol) -> the position to update, loaded by the caller."""


def applies(current: OrderStatus, reported: OrderStatus) -> bool:
    """Whether a reported status changes the order: only moves the transition table allows."""
    return reported in ALLOWED_TRANSITIONS[current] and (
        reported != current or reported is OrderStatus.PARTIALLY_FILLED
    )


class Recorder:
    def __init__(self, open_orders: OpenOrderCounts | None = None, trading: TradingStates | None = None) -> None:
        """`open_orders` learns when orders open (created here) and end; `trading` (the kill switch's memory)
        learns every position move, for reduce-only checks at intake."""
        self.open_orders = open_orders or OpenOrderCounts()
        self.trading = trading or TradingStates()

    def record(
        self,
        order: OrderRecord,
        report: Report,
        rules: SymbolRules,
        positions: PositionSource,
        out: Changes,
        known_trades: Container[str] = (),
    ) -> list[OrderRecord]:
        """Apply `report` to `order` (in place) and collect the outputs in `out`. Returns the bracket exit legs
        created (PENDING, already in `out`); the caller sends them to the venue."""
        now = now_ms()
        fills = 0
        for execution in report.executions:
            if execution.venue_trade_id is not None and execution.venue_trade_id in known_trades:
                continue
            fills += 1
            fill = {
                "id": new_id(),
                "order_id": order.id,
                "user_id": order.user_id,
                "account_id": order.account_id,
                "symbol": order.symbol,
                "side": order.side,
                "price": execution.price,
                "quantity": execution.quantity,
                "fee": execution.fee,
                "fee_asset": execution.fee_asset,
                "liquidity": str(execution.liquidity),
                "venue_trade_id": execution.venue_trade_id,
                "ts": execution.ts,
            }
            out.fills.append(fill)
            order.filled_quantity += execution.quantity
            order.filled_quote += execution.price * execution.quantity
            order.fee += execution.fee
            order.fee_asset = execution.fee_asset
            position = positions(order.account_id, order.symbol)
            update_position(
                position, order.side, execution.price, execution.quantity, execution.fee, execution.fee_asset, rules
            )
            out.positions[(order.account_id, order.symbol)] = position
            self.trading.position_moved(order.account_id, order.symbol, position.quantity)
            out.event(order.user_id, "FILL", fill_data(fill), execution.ts)
        triggered = report.triggered and order.triggered_at is None
        if triggered:
            order.triggered_at = now
        current, reported = OrderStatus.of(order.status), OrderStatus.of(report.status)
        changed = applies(current, reported) and (reported != current or fills > 0)
        if changed:
            order.status = reported
            if reported in ENDED_WITH_REASON:
                order.reject_reason = report.reason or order.reject_reason
            if reported.is_terminal and order.type != OrderType.MARKET:
                self.open_orders.release(order.account_id, order.symbol)
        elif reported != current:
            log.debug("not applying a %s report to %s order %s", reported, current, order.id)
        if report.venue_order_id and report.venue_order_id != order.venue_order_id:
            order.venue_order_id = report.venue_order_id
            out.update(order)
        if not (changed or fills or triggered):
            return []
        order.updated_at = now
        out.update(order)
        if not order.external:  # an imported venue order's own events were told when it was imported
            out.event(order.user_id, "ORDER_UPDATE", order_data(order), now)
        if changed and reported is OrderStatus.FILLED:
            return self._bracket_exits(order, rules, out)
        return []

    def transition(self, order: OrderRecord, status: OrderStatus, reason: str | None, out: Changes) -> bool:
        """A status change decided by us (not reported by a venue): applied only if the table allows it."""
        if not applies(OrderStatus.of(order.status), status):
            return False
        order.status = status
        order.reject_reason = reason if status in ENDED_WITH_REASON else order.reject_reason
        if status.is_terminal and order.type != OrderType.MARKET:
            self.open_orders.release(order.account_id, order.symbol)
        order.updated_at = now_ms()
        out.update(order)
        out.event(order.user_id, "ORDER_UPDATE", order_data(order), order.updated_at)
        return True

    def new_order(self, order: OrderRecord, out: Changes) -> None:
        """An order created by the core (bracket leg, imported venue order): stored and told."""
        out.insert(order)
        out.event(order.user_id, "ORDER_UPDATE", order_data(order), order.created_at)
        if not order.is_terminal and order.type != OrderType.MARKET:
            self.open_orders.opened(order.account_id, order.symbol)

    def _bracket_exits(self, entry: OrderRecord, rules: SymbolRules, out: Changes) -> list[OrderRecord]:
        if entry.take_profit_price is None or entry.stop_loss_price is None or entry.parent_id is not None:
            return []
        if entry.external:
            return []
        quantity = bracket_quantity(entry, rules)
        lowest = min(entry.take_profit_price, entry.stop_loss_price)
        if quantity < rules.min_qty or quantity * lowest < rules.min_notional:
            message = f"Bracket exits of order {entry.id} not placed: {fmt(quantity)} {rules.base} is below the minimum"
            log.warning("%s", message)
            data = {"account_id": entry.account_id, "code": "BRACKET_SKIPPED", "message": message, "retry_after": 0}
            out.event(entry.user_id, "NOTICE", data, now_ms())
            return []
        legs = exit_legs(entry, quantity)
        for leg in legs:
            self.new_order(leg, out)
        return legs


def bracket_quantity(entry: OrderRecord, rules: SymbolRules) -> Decimal:
    """What the exits of a filled bracket entry sell (or buy back): the quantity received, net of a fee paid in the
    base asset, floored to the step."""
    base_fee = entry.fee if entry.fee_asset == rules.base else Decimal(0)
    received = entry.filled_quantity - base_fee if Side.of(entry.side) is Side.BUY else entry.filled_quantity
    return floor_to_step(received, rules.step_size)
