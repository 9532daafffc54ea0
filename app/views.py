"""The wire form of orders, fills, balances and positions — one place, shared by the REST API, the WebSocket
events (stored in the event log) and the UI. Money is a decimal string."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from app.domain import fmt
from storage.models import Balance, Fill

AVG_PLACES = Decimal("1e-12")


class OrderFields(Protocol):
    """An order row or an in-memory OrderRecord: what the wire form reads."""

    id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    price: Decimal | None
    stop_price: Decimal | None
    trailing_delta_bps: int | None
    status: str
    filled_quantity: Decimal
    filled_quote: Decimal
    fee: Decimal
    fee_asset: str | None
    reject_reason: str | None
    parent_id: str | None
    oco_group: str | None
    replaces: str | None
    take_profit_price: Decimal | None
    stop_loss_price: Decimal | None
    created_at: int
    updated_at: int


def order_data(order: OrderFields) -> dict[str, Any]:
    avg = order.filled_quote / order.filled_quantity if order.filled_quantity else None
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "account_id": order.account_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "quantity": fmt(order.quantity),
        "quote_quantity": fmt(order.quote_quantity),
        "price": fmt(order.price),
        "stop_price": fmt(order.stop_price),
        "trailing_delta_bps": order.trailing_delta_bps,
        "status": order.status,
        "filled_quantity": fmt(order.filled_quantity),
        "avg_fill_price": fmt(avg.quantize(AVG_PLACES) if avg is not None else None),
        "fee": fmt(order.fee),
        "fee_asset": order.fee_asset,
        "reject_reason": order.reject_reason,
        "parent_id": order.parent_id,
        "oco_group": order.oco_group,
        "replaces": order.replaces,
        "take_profit_price": fmt(order.take_profit_price),
        "stop_loss_price": fmt(order.stop_loss_price),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def fill_data(fill: Fill | Mapping[str, Any]) -> dict[str, Any]:
    """A stored fill, or the column values of one (the execution core builds fills as plain rows)."""
    if not isinstance(fill, Mapping):
        fill = fill.model_dump()
    return {
        "id": fill["id"],
        "order_id": fill["order_id"],
        "account_id": fill["account_id"],
        "symbol": fill["symbol"],
        "side": fill["side"],
        "price": fmt(fill["price"]),
        "quantity": fmt(fill["quantity"]),
        "fee": fmt(fill["fee"]),
        "fee_asset": fill["fee_asset"],
        "liquidity": fill["liquidity"],
        "ts": fill["ts"],
    }


def balance_data(balance: Balance) -> dict[str, Any]:
    return {"asset": balance.asset, "free": fmt(balance.free), "locked": fmt(balance.locked)}
