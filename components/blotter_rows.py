"""Grid rows of the blotter tabs, built from the services' dicts (order, fill, position, balance).

Prices are shown on the symbol's tick grid and money with two decimals, as an exchange screen shows them; the
wire values stay exact (an average fill price such as 90098.668668… is rounded only for display).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.domain import SymbolRules, fmt
from components.formatting import on_step, stamp

MONEY = Decimal("0.01")


def price_text(value: str | Decimal | None, symbol: str, rules: Mapping[str, SymbolRules]) -> str:
    """A price on the symbol's tick grid ("" for none); unknown symbols keep the value as given."""
    if value is None or value == "":
        return ""
    known = rules.get(symbol)
    return on_step(value, known.tick_size) if known else str(value)


def money_text(value: str | Decimal | None) -> str:
    """An amount of the quote asset with two decimals ("" for none)."""
    return "" if value is None or value == "" else on_step(value, MONEY)


def order_row(order: dict[str, Any], rules: Mapping[str, SymbolRules]) -> dict[str, Any]:
    """A grid row from an order dict (strings, as the grid shows them)."""
    symbol = order["symbol"]
    size = order["quantity"] or f"{order['quote_quantity']} (quote)"
    return {
        **{k: v for k, v in order.items() if isinstance(v, str)},
        "time": stamp(order["created_at"]),
        "quantity": size,
        "price": price_text(order["price"], symbol, rules) or "Market",
        "stop_price": price_text(order["stop_price"], symbol, rules) or _trail_text(order.get("trailing_delta_bps")),
        "avg_fill_price": price_text(order.get("avg_fill_price"), symbol, rules),
        "action": "Cancel",
        "edit": "Edit",
        # Raw values for the edit dialog (the shown ones are formatted); quantity: what is left to fill.
        "edit_price": order["price"],
        "edit_stop_price": order["stop_price"],
        "edit_quantity": _remaining(order),
        "edit_trailing": str(order["trailing_delta_bps"]) if order.get("trailing_delta_bps") else None,
        "updated_at": order["updated_at"],
    }


def fill_row(fill: dict[str, Any], rules: Mapping[str, SymbolRules]) -> dict[str, Any]:
    return {
        **fill,
        "time": stamp(fill["ts"]),
        "price": price_text(fill["price"], fill["symbol"], rules),
        "fee": f"{fill['fee']} {fill['fee_asset']}",
    }


def position_row(position: dict[str, Any], rules: Mapping[str, SymbolRules]) -> dict[str, Any]:
    """Display row of a position dict (`symbol`, `quantity`, `avg_entry_price`, `market_price`, PnLs)."""
    symbol = position["symbol"]
    return {
        "id": symbol,
        "symbol": symbol,
        "quantity": position["quantity"],
        "avg_entry_price": price_text(position.get("avg_entry_price"), symbol, rules),
        "market_price": price_text(position.get("market_price"), symbol, rules),
        "unrealized_pnl": money_text(position.get("unrealized_pnl")),
        "realized_pnl": money_text(position.get("realized_pnl")),
        "action": "Close" if Decimal(position["quantity"]) > 0 else "",  # a flat row keeps its realized PnL only
    }


def marked(position: dict[str, Any], price: Decimal) -> dict[str, Any] | None:
    """The position valued at a new last price (no DB work), or None if nothing changes."""
    if not position.get("avg_entry_price") or position.get("market_price") == format(price, "f"):
        return None
    quantity, entry = Decimal(position["quantity"]), Decimal(position["avg_entry_price"])
    pnl = (price - entry) * quantity
    return {**position, "market_price": format(price, "f"), "unrealized_pnl": format(pnl, "f")}


def balance_row(balance: dict[str, Any]) -> dict[str, Any]:
    total = Decimal(balance["free"]) + Decimal(balance["locked"])
    return {**balance, "id": balance["asset"], "total": format(total.normalize(), "f")}


def _remaining(order: dict[str, Any]) -> str | None:
    if order["quantity"] is None:
        return None
    return fmt(Decimal(order["quantity"]) - Decimal(order["filled_quantity"]))


def _trail_text(bps: int | None) -> str:
    return f"trail {bps} bps" if bps else ""
