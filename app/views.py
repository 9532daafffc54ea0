"""The wire form of orders, fills, balances and positions — one place, shared by the REST API, the WebSocket
events (stored in the event log) and the UI. Money is a decimal string."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.domain import fmt
from storage.models import Balance, Fill, Order


def order_data(order: Order) -> dict[str, Any]:
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
        "status": order.status,
        "filled_quantity": fmt(order.filled_quantity),
        "avg_fill_price": fmt(avg.quantize(Decimal("1e-12")) if avg is not None else None),
        "fee": fmt(order.fee),
        "fee_asset": order.fee_asset,
        "reject_reason": order.reject_reason,
        "parent_id": order.parent_id,
        "take_profit_price": fmt(order.take_profit_price),
        "stop_loss_price": fmt(order.stop_loss_price),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def fill_data(fill: Fill) -> dict[str, Any]:
    return {
        "id": fill.id,
        "order_id": fill.order_id,
        "account_id": fill.account_id,
        "symbol": fill.symbol,
        "side": fill.side,
        "price": fmt(fill.price),
        "quantity": fmt(fill.quantity),
        "fee": fmt(fill.fee),
        "fee_asset": fill.fee_asset,
        "liquidity": fill.liquidity,
        "ts": fill.ts,
    }


def balance_data(balance: Balance) -> dict[str, Any]:
    return {"asset": balance.asset, "free": fmt(balance.free), "locked": fmt(balance.locked)}
