"""Modify/replace (Alpaca's model): a change to a working order's price, quantity or stop price is a NEW order that
records what it `replaces`; the execution core cancels the old one at the venue (it ends `REPLACED`) and places the
new one in the same step (Binance: one `POST /api/v3/order/cancelReplace`; paper: one batch). Intake here only
validates and journals the replacement, exactly as a new order (`OrderService.journal`): persist before enqueue.

What the replacement is: the old order's symbol, side, type, time in force and bracket prices, with the changed
fields; its quantity is the given one, or else what the old order still had to fill (fills stay with the old order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.client_order_ids import check_client_order_id, refuse_made_client_order_id
from app.domain import OrderStatus, OrderType, fmt
from app.errors import Conflict, NotFound, ValidationFailed
from app.orders import OrderRequest, OrderService, Submitted
from app.views import order_data
from storage.models import Order
from storage.repositories import orders


@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    """Raw fields as they arrive; None means "keep the old order's value"."""

    price: Any = None
    quantity: Any = None
    stop_price: Any = None
    trailing_delta_bps: Any = None
    client_order_id: str | None = None


async def replace_order(service: OrderService, user_id: str, order_id: str, change: ReplaceRequest) -> Submitted:
    """Validate and journal the replacement of `order_id` (PENDING, `replaces` set) and enqueue it.

    404 if the order is not the user's; 409 `ORDER_NOT_OPEN` unless it is working at the venue (OPEN or
    PARTIALLY_FILLED, no cancel requested); 422 for a type that cannot be modified (MARKET, an OCO leg,
    an order placed outside Tradewind) or a change that a new order of that type would not pass. A repeated
    `client_order_id` answers with the replacement it already created (200); one that names any other order of the
    account is 409 `CLIENT_ORDER_ID_IN_USE`."""
    client_order_id = check_client_order_id(change.client_order_id)
    old = await service.db.read(lambda s: _owned(s, user_id, order_id))
    if client_order_id is not None:
        existing = await service.db.fetch_in(lambda r: orders.with_client_order_id(r, old.account_id, client_order_id))
        if existing is not None and existing.replaces == old.id:
            return Submitted(order_data(existing), created=False)
        refuse_made_client_order_id(client_order_id)
        if existing is not None:
            raise _client_order_id_in_use()
    _check_replaceable(old)
    if all(v is None for v in (change.price, change.quantity, change.stop_price, change.trailing_delta_bps)):
        raise ValidationFailed("send at least one of price, quantity, stop_price and trailing_delta_bps", field="price")
    account = await service.accounts.resolve(user_id, old.account_id)
    remaining = (old.quantity or 0) - old.filled_quantity
    request = OrderRequest(
        symbol=old.symbol,
        side=old.side,
        type=old.type,
        quantity=change.quantity if change.quantity is not None else fmt(remaining),
        price=change.price if change.price is not None else old.price,
        stop_price=change.stop_price if change.stop_price is not None else old.stop_price,
        time_in_force=old.time_in_force,
        take_profit_price=old.take_profit_price,
        stop_loss_price=old.stop_loss_price,
        trailing_delta_bps=change.trailing_delta_bps
        if change.trailing_delta_bps is not None
        else old.trailing_delta_bps,
        account_id=old.account_id,
        client_order_id=client_order_id,
    )
    replacement = service._build(user_id, account, request, await service.rules_for(account))
    replacement.replaces = old.id
    submitted = await service.journal(account, replacement)
    if not submitted.created and submitted.order.get("replaces") != old.id:
        raise _client_order_id_in_use()  # another order took the id between the check above and the journal
    return submitted


def _client_order_id_in_use() -> Conflict:
    """A replacement's client_order_id that names some other order of the account: answering with that order (as a
    repeated new order is answered) would tell the caller its change was made."""
    return Conflict(
        "This client_order_id already names another order of this account.",
        code="CLIENT_ORDER_ID_IN_USE",
        field="client_order_id",
    )


def _owned(session: Session, user_id: str, order_id: str) -> Order:
    order = orders.get_owned(session, user_id, order_id)
    if order is None:
        raise NotFound("Order not found.", code="ORDER_NOT_FOUND")
    return order


def _check_replaceable(order: Order) -> None:
    if order.type == OrderType.MARKET:
        raise ValidationFailed("A MARKET order cannot be modified.", code="ORDER_NOT_REPLACEABLE", field="type")
    if order.oco_group is not None:
        raise ValidationFailed(
            "An OCO leg (a bracket's exit, a stand-alone OCO) cannot be modified on its own; "
            "cancel the pair and place a new one.",
            code="ORDER_NOT_REPLACEABLE",
        )
    if order.external:
        raise ValidationFailed(
            "An order placed outside Tradewind cannot be modified here.", code="ORDER_NOT_REPLACEABLE"
        )
    status = OrderStatus(order.status)
    if status.is_terminal:
        raise Conflict(f"The order is already {order.status}.", code="ORDER_NOT_OPEN")
    if status is OrderStatus.PENDING:
        raise Conflict("The order is not working at the venue yet; try again in a moment.", code="ORDER_NOT_OPEN")
    if order.cancel_requested_at is not None:
        raise Conflict("A cancel of this order is under way.", code="ORDER_NOT_OPEN")
