"""What the execution core works on, in memory: an order (`OrderRecord`), and what a venue reports about one
(`Report` with its `Execution`s). No ORM objects on the hot path: records are plain slotted dataclasses, read from
and written to the database with Core statements (storage/repositories/orders.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping

from app.domain import OrderStatus
from app.immutable import immutable

ZERO = Decimal(0)


@dataclass(slots=True, eq=False)
class OrderRecord:
    """One order; the column names of the `orders` table, so a row maps onto it one to one."""

    id: str
    user_id: str
    account_id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    status: str
    created_at: int
    updated_at: int
    time_in_force: str | None = None
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_delta_bps: int | None = None
    filled_quantity: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fee: Decimal = ZERO
    fee_asset: str | None = None
    reject_reason: str | None = None
    parent_id: str | None = None
    oco_group: str | None = None
    replaces: str | None = None  # the order this one replaces (modify/replace)
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    venue_order_id: str | None = None
    sent_at: int | None = None
    cancel_requested_at: int | None = None
    triggered_at: int | None = None
    external: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> OrderRecord:
        return cls(**{name: row[name] for name in _FIELDS})

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def remaining(self) -> Decimal:
        return (self.quantity or ZERO) - self.filled_quantity

    @property
    def is_terminal(self) -> bool:
        return OrderStatus.of(self.status).is_terminal


_FIELDS = tuple(f.name for f in fields(OrderRecord))

# Columns the execution core changes after intake (intake owns the rest; cancel requests are intake's too, so a
# write-behind update never overwrites a cancel that arrived meanwhile).
EXECUTION_COLUMNS = (
    "status",
    "filled_quantity",
    "filled_quote",
    "fee",
    "fee_asset",
    "reject_reason",
    "venue_order_id",
    "sent_at",
    "triggered_at",
    "updated_at",
)


@immutable
class Execution:
    """One fill as a venue reports it, fee included (the venue charges it). `venue_trade_id` is the venue's
    durable trade id, used to ignore a fill reported twice; None for a venue whose ids do not survive a restart
    (the paper venue reports each fill exactly once)."""

    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str  # MAKER | TAKER
    ts: int
    venue_trade_id: str | None = None


@immutable
class Report:
    """A venue's word about one of our orders: its status now, new fills, and why it ended (if it did).

    `triggered`: a stop/take-profit whose trigger fired (an event even when the status does not change)."""

    order_id: str
    status: OrderStatus
    executions: tuple[Execution, ...] = ()
    reason: str | None = None
    triggered: bool = False
    venue_order_id: str | None = None
