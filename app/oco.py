"""Stand-alone OCO (one-cancels-the-other) for an existing position: a take-profit LIMIT and a stop-loss (STOP_MARKET,
or STOP_LIMIT with `stop_limit_price`) on the same side and quantity, sharing one `oco_group`. They are the same
pair a bracket places for its exits, so everything downstream is shared: one reservation (the limit leg's), the
venue accepts or refuses the pair as one order list (paper `submit_list`, Binance `orderList/oco`), one leg filling
or triggering expires the other, cancelling one cancels both.

Intake checks that price and stop_price are on the right sides of each other (SELL: price above stop_price; BUY:
below). Binance's rule against the last price (SELL: price > last > stop_price) is the venue's, as for bracket
exits: a leg that would trigger or take at once makes the venue refuse both legs with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.domain import OrderType, Side, Venue
from app.errors import Conflict, ValidationFailed
from app.events import UserEvent
from app.execution.commands import SubmitOrder
from app.execution.records import OrderRecord
from app.ids import new_id
from app.orders import OrderRequest, OrderService, _enum
from app.views import order_data
from storage.models import Account
from storage.repositories import events, writes


@dataclass(frozen=True, slots=True)
class OcoRequest:
    """Raw fields as they arrive; `OcoService`/`place_oco` validates them."""

    symbol: Any
    side: Any
    quantity: Any
    price: Any
    stop_price: Any
    stop_limit_price: Any = None
    account_id: str | None = None


async def place_oco(service: OrderService, user_id: str, request: OcoRequest) -> list[dict[str, Any]]:
    """Validate and journal both legs (PENDING, one transaction) and queue them as one list. Returns the legs:
    take-profit first. 422 naming the field on bad input (nothing stored), 404 for a foreign account."""
    account = await service.accounts.resolve(user_id, request.account_id)
    if account.key_rejected_at is not None:
        raise Conflict(
            "The exchange refuses this account's API key; add a new key before trading.",
            code="ACCOUNT_KEY_REJECTED",
            field="account_id",
        )
    rules = await service.rules_for(account)
    side = _enum(Side, request.side, "side")
    stop_type = OrderType.STOP_LIMIT if request.stop_limit_price is not None else OrderType.STOP_MARKET
    base = {"symbol": request.symbol, "side": side.value, "quantity": request.quantity, "account_id": account.id}
    take_profit = service._build(
        user_id, account, OrderRequest(type=OrderType.LIMIT, price=request.price, **base), rules
    )
    try:
        stop_loss = service._build(
            user_id,
            account,
            OrderRequest(type=stop_type, price=request.stop_limit_price, stop_price=request.stop_price, **base),
            rules,
        )
    except ValidationFailed as error:
        if error.field != "price":
            raise
        raise ValidationFailed(
            error.message.replace("price", "stop_limit_price", 1), field="stop_limit_price"
        ) from None
    assert take_profit.price is not None and stop_loss.stop_price is not None
    if (
        (take_profit.price <= stop_loss.stop_price)
        if side is Side.SELL
        else (take_profit.price >= stop_loss.stop_price)
    ):
        where = "above" if side is Side.SELL else "below"
        raise ValidationFailed(f"price must be {where} stop_price for a {side} OCO", field="price")
    group = new_id()
    for leg in (take_profit, stop_loss):
        leg.oco_group = group
    return await _journal_list(service, account, [take_profit, stop_loss])


async def _journal_list(service: OrderService, account: Account, legs: list[OrderRecord]) -> list[dict[str, Any]]:
    """Store an order list (a stand-alone OCO) in one transaction, every leg PENDING with its first event; the
    first leg's command carries the list (the executors submit its legs together, as one venue order list)."""
    for leg in legs:  # the kill switch, as for any new order
        service.trading.check(account.id, leg.symbol, leg.side, leg.quantity, leg.quote_quantity)
    reserved: list[OrderRecord] = []
    try:
        for leg in legs:
            service.open_orders.reserve(account.id, leg.symbol)  # 422 TOO_MANY_OPEN_ORDERS past the limit
            reserved.append(leg)
    except Exception:
        for leg in reserved:  # a refused pair holds no slot
            service.open_orders.release(account.id, leg.symbol)
        raise
    stored = [
        (leg.as_row(), UserEvent.create(leg.user_id, "ORDER_UPDATE", order_data(leg), leg.created_at)) for leg in legs
    ]

    def store(session: Session) -> None:
        for row, event in stored:
            writes.stage_order(session, row)
            events.append(session, event.user_id, event.type, event.payload, event.ts, on_seq=event.numbered)

    try:
        await service.db.grouped.write(store)
    except Exception:
        for leg in legs:
            service.open_orders.release(account.id, leg.symbol)
        raise
    for _, event in stored:
        service.publish(event)
    service.queue.submit(SubmitOrder(legs[0].id, account.id, Venue(account.venue)))
    return [event.data for _, event in stored]
