"""The blotter's "Edit" dialog: modify/replace an open order's price, quantity or stop price. Only the fields the
order's type has are shown; a field left as it was is not sent. The service validates (its message is shown)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from app.domain import OrderType
from app.replacements import ReplaceRequest
from components.ticket_rules import whole_bps

Modify = Callable[[str, ReplaceRequest], Awaitable[bool]]
"""(order id, change) -> True when the replacement was accepted (the dialog closes)."""


def open_for(order: dict[str, Any], on_modify: Modify) -> ui.dialog:
    """Show the dialog for one open order (a blotter row carrying the order's raw `edit_*` values)."""
    kind = OrderType(order["type"])
    with ui.dialog() as dialog, ui.card().classes("min-w-[18rem]").mark("edit-order"):
        ui.label(f"Modify {order['side']} {order['type']} {order['symbol']}").classes("text-subtitle1")
        price = ui.input("Price", value=order.get("edit_price") or "").mark("edit-price")
        price.set_visibility(kind.has_limit_price)
        stop = ui.input("Stop price", value=order.get("edit_stop_price") or "").mark("edit-stop-price")
        stop.set_visibility(kind.has_stop_price)
        trail = ui.input("Trail (basis points)", value=order.get("edit_trailing") or "").mark("edit-trail")
        trail.set_visibility(kind.is_trailing)
        quantity = ui.input("Amount", value=order.get("edit_quantity") or "").mark("edit-quantity")

        async def save() -> None:
            change = ReplaceRequest(
                price=_changed(price.value, order.get("edit_price")),
                quantity=_changed(quantity.value, order.get("edit_quantity")),
                stop_price=_changed(stop.value, order.get("edit_stop_price")),
                trailing_delta_bps=whole_bps(_changed(trail.value, order.get("edit_trailing"))),
            )
            if await on_modify(str(order["id"]), change):
                dialog.close()

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat no-caps")
            ui.button("Modify", on_click=save).props("no-caps").mark("edit-save")
    dialog.on("hide", dialog.delete)  # one dialog per click; gone once closed
    dialog.open()
    return dialog


def _changed(typed: str | None, original: str | None) -> str | None:
    text = (typed or "").strip()
    return text if text and text != (original or "") else None
