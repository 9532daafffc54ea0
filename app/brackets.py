"""Bracket exits: when an entry with take_profit_price and stop_loss_price fills, two exit orders are created,
a take-profit LIMIT and a stop-loss STOP_MARKET on the opposite side, sharing one `oco_group` (one filling
cancels the other). The recorder creates them the same way for every venue."""

from __future__ import annotations

from decimal import Decimal

from app.domain import OrderStatus, OrderType, Side
from app.execution.records import OrderRecord
from app.ids import new_id, new_timed_id, venue_client_order_id


def exit_legs(entry: OrderRecord, quantity: Decimal) -> list[OrderRecord]:
    """The two PENDING exit orders of a filled bracket entry (not yet stored), take-profit first."""
    group = new_id()
    legs = [
        (OrderType.LIMIT, entry.take_profit_price, None, "GTC"),
        (OrderType.STOP_MARKET, None, entry.stop_loss_price, None),
    ]
    made = []
    for kind, price, stop, tif in legs:
        leg_id, now = new_timed_id()  # created_at is the id's millisecond (app/ids.py)
        made.append(
            OrderRecord(
                id=leg_id,
                user_id=entry.user_id,
                account_id=entry.account_id,
                client_order_id=venue_client_order_id(leg_id),
                symbol=entry.symbol,
                side=Side(entry.side).opposite,
                type=kind,
                time_in_force=tif,
                quantity=quantity,
                price=price,
                stop_price=stop,
                status=OrderStatus.PENDING,
                parent_id=entry.id,
                oco_group=group,
                created_at=now,
                updated_at=now,
            )
        )
    return made
