"""Price alerts panel: "notify me when SYMBOL crosses X". The direction comes from where X lies relative to the
current price; the alert fires once (the service marks it atomically) and shows as a notification."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nicegui import ui

from app.alerts import direction_for
from app.domain import SymbolRules, parse_decimal
from app.errors import TradewindError
from components import session

if TYPE_CHECKING:
    from app.services import Services


class AlertPanel:
    """Create and delete alerts; `fired(alert)` marks one as triggered in the list."""

    def __init__(
        self,
        services: Services,
        user_id: str,
        rules: SymbolRules,
        last_price: Callable[[], Decimal | None],
        alerts: list[dict[str, Any]],
    ) -> None:
        self.services, self.user_id, self.rules, self.last_price = services, user_id, rules, last_price
        self.alerts = alerts
        with ui.column().classes("w-full gap-1 p-3 tw-panel").mark("alerts"):
            ui.label("Price alerts").classes("text-sm font-bold")
            with ui.row().classes("w-full no-wrap items-start gap-1"):
                self.price = ui.input(f"Notify when {rules.symbol} crosses").props("dense outlined inputmode=decimal")
                self.price.classes("grow font-mono").mark("alert-price")
                self.price.on("keydown.enter", self.add)
                add = ui.button(icon="add_alert", on_click=self.add).props('flat dense aria-label="Add price alert"')
                add.mark("alert-add").tooltip("Add")
            self.error = ui.label().classes("text-negative text-xs").mark("alert-error")
            self.listing = ui.column().classes("w-full gap-0 text-xs font-mono")
        self._render()

    async def add(self) -> None:
        """Create an alert at the typed price, above or below the current price."""
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.navigate.to("/login")
            return
        last = self.last_price()
        try:
            target = parse_decimal((self.price.value or "").strip() or None, "price")
            if last is None:
                raise TradewindError(f"{self.rules.symbol} has no price yet; try again in a moment.")
            alert = await self.services.alerts.create(
                user.id, self.rules.symbol, target, direction_for(target, Decimal(last))
            )
        except TradewindError as exc:
            self.error.set_text(exc.message)
            return
        self.error.set_text("")
        self.price.set_value("")
        self.alerts.insert(0, alert)
        word = "rises to" if alert["direction"] == "ABOVE" else "falls to"
        ui.notify(f"Alert set: {alert['symbol']} {word} {alert['price']}", type="info")
        self._render()

    async def delete(self, alert_id: str) -> None:
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.navigate.to("/login")
            return
        try:
            await self.services.alerts.delete(user.id, alert_id)
        except TradewindError as exc:
            self.error.set_text(exc.message)
        self.alerts[:] = [a for a in self.alerts if a["id"] != alert_id]
        self._render()

    def fired(self, alert: dict[str, Any]) -> None:
        """The service fired an alert: show it as triggered."""
        self.alerts[:] = [alert if a["id"] == alert["id"] else a for a in self.alerts]
        self._render()

    def _render(self) -> None:
        # Rebuilt only on user actions or a fired alert: rare, and the list is short.
        self.listing.clear()
        with self.listing:
            if not self.alerts:
                ui.label("No alerts").classes("opacity-60")
            for alert in self.alerts[:20]:
                arrow = "≥" if alert["direction"] == "ABOVE" else "≤"
                state = "fired" if alert["triggered_at"] else "active"
                with ui.row().classes("w-full items-center justify-between no-wrap"):
                    ui.label(f"{alert['symbol']} {arrow} {alert['price']} · {state}").mark(f"alert-{state}")
                    ui.button(icon="close", on_click=lambda a=alert: self.delete(a["id"])).props(
                        'flat dense round size=xs aria-label="Delete alert"'
                    ).mark("alert-delete")
