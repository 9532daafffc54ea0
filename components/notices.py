"""Toasts for what happens to a person's orders and alerts (called in the page's context)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nicegui import ui

from app.domain import SymbolRules
from components.blotter_rows import price_text


def order_notice(order: dict[str, Any], rules: Mapping[str, SymbolRules]) -> None:
    """Notify fills, partial fills, rejections (with the reason), cancels and expiries; quiet for the rest."""
    what = f"{order['side']} {order['quantity'] or order['quote_quantity']} {order['symbol']}"
    status = order["status"]
    if status == "FILLED":
        ui.notify(f"Filled: {what} @ {price_text(order['avg_fill_price'], order['symbol'], rules)}", type="positive")
    elif status == "PARTIALLY_FILLED":
        ui.notify(f"Partially filled: {order['filled_quantity']} of {what}", type="positive")
    elif status == "REJECTED":
        ui.notify(f"Rejected: {what} — {order['reject_reason'] or 'refused by the venue'}", type="negative")
    elif status == "CANCELED":
        ui.notify(f"Canceled: {what}", type="warning")
    elif status == "EXPIRED":
        ui.notify(f"Expired: {what}", type="warning")


def alert_notice(alert: dict[str, Any]) -> None:
    """A fired price alert: stays until dismissed (a person may be looking elsewhere)."""
    word = "rose to" if alert["direction"] == "ABOVE" else "fell to"
    ui.notify(
        f"Price alert: {alert['symbol']} {word} {alert['price']} (last {alert.get('trigger_price')})",
        type="info",
        timeout=0,
        close_button="OK",
        icon="notifications_active",
    )
