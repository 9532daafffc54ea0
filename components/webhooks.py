"""The settings page's Webhooks section: add a URL for event kinds (its signing secret is shown once), list,
delete, and each webhook's last delivery attempts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from app.errors import TradewindError
from components import session
from components.formatting import stamp

if TYPE_CHECKING:
    from app.services import Services
    from app.webhooks.service import DeliveryView, WebhookView

KIND_LABELS = {"fill": "Fills", "rejection": "Rejections", "alert": "Price alerts"}
OUTCOME_COLORS = {"DELIVERED": "positive", "FAILED": "negative", "REFUSED": "negative", "DROPPED": "warning"}


async def create(services: Services, user_id: str) -> WebhookSection:
    """Build the section for the page's user (reads their webhooks first)."""
    section = WebhookSection(services, user_id)
    await section.refresh()
    return section


class WebhookSection:
    """Every action re-checks the session user first (the page may outlive the log-in)."""

    def __init__(self, services: Services, user_id: str) -> None:
        self.services, self.user_id = services, user_id
        with ui.card().classes("w-full").mark("webhooks"):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label("Webhooks").classes("text-lg font-bold")
                ui.button(icon="refresh", on_click=self.refresh).props(
                    'flat dense round aria-label="Show the latest deliveries"'
                ).mark("webhooks-refresh").tooltip("Show the latest deliveries")
            ui.label(
                "Tradewind POSTs the chosen events to your URL, signed with the webhook's secret "
                "(header Tradewind-Signature; see docs/api.md)."
            ).classes("text-sm")
            self.listing = ui.column().classes("w-full gap-3")
            ui.separator()
            self.url = (
                ui.input("URL", placeholder="https://bot.example.com/tradewind")
                .props("dense outlined autocomplete=off")
                .classes("w-full")
                .mark("webhook-url")
            )
            with ui.row().classes("gap-4"):
                self.kinds = {
                    kind: ui.checkbox(label, value=kind == "fill").mark(f"webhook-{kind}")
                    for kind, label in KIND_LABELS.items()
                }
            self.error = ui.label().classes("text-negative text-sm").mark("webhook-error")
            ui.button("Add webhook", on_click=self.add).mark("webhook-add")
            self.secret = ui.column().classes("w-full")

    async def _allowed(self) -> bool:
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.navigate.to("/login")
            return False
        return True

    async def add(self) -> None:
        if not await self._allowed():
            return
        kinds = [kind for kind, box in self.kinds.items() if box.value]
        try:
            view, secret = await self.services.webhooks.create(self.user_id, (self.url.value or "").strip(), kinds)
        except TradewindError as exc:
            self.error.set_text(exc.message)
            return
        self.error.set_text("")
        self.url.set_value("")
        self.secret.clear()
        with self.secret, ui.card().classes("w-full bg-amber-1 text-black"):
            ui.label(f"Signing secret of {view.url} — copy it now, it is not shown again:").classes("text-sm")
            ui.label(secret).classes("font-mono break-all").mark("webhook-secret")
        ui.notify("Webhook added.", type="positive")
        await self.refresh()

    async def delete(self, webhook_id: str) -> None:
        if not await self._allowed():
            return
        try:
            await self.services.webhooks.delete(self.user_id, webhook_id)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read the webhooks and their last deliveries (rare: on load, after a change, or on request)."""
        overview = await self.services.webhooks.overview(self.user_id)
        self.listing.clear()
        with self.listing:
            if not overview:
                ui.label("No webhooks yet.").classes("text-sm opacity-60").mark("no-webhooks")
            for view, deliveries in overview:
                self._webhook(view, deliveries)

    def _webhook(self, view: WebhookView, deliveries: list[DeliveryView]) -> None:
        with ui.column().classes("w-full gap-1").mark("webhook-row"):
            with ui.row().classes("w-full items-center justify-between no-wrap"):
                with ui.column().classes("gap-0"):
                    ui.label(view.url).classes("font-mono text-sm break-all")
                    kinds = ", ".join(KIND_LABELS[k] for k in view.events)
                    ui.label(f"{kinds} · since {stamp(view.created_at)}").classes("text-xs opacity-60")
                ui.button("Delete", on_click=lambda: self.delete(view.id)).props("flat dense color=negative").mark(
                    "webhook-delete"
                )
            if not deliveries:
                ui.label("No deliveries yet.").classes("text-xs opacity-60")
            for record in deliveries:
                self._delivery(record)

    def _delivery(self, record: DeliveryView) -> None:
        answer = str(record.status_code) if record.status_code is not None else ""
        details = " · ".join(
            part
            for part in (
                stamp(record.created_at),
                f"{record.event} #{record.attempt}" if record.event else "",
                answer,
                record.error or "",
                f"{record.duration_ms} ms" if record.duration_ms is not None else "",
            )
            if part
        )
        with ui.row().classes("items-center gap-2 text-xs font-mono").mark("webhook-delivery"):
            ui.badge(record.outcome, color=OUTCOME_COLORS.get(record.outcome, "grey"))
            ui.label(details)
