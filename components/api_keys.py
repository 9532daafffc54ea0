"""The API keys section of /settings: create (label, scopes, optional addresses; the key shown once with a copy
button), list, revoke with confirmation. Every action re-checks the session user first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nicegui import ui

from app.api_keys import READ, TRADE, ApiKeyView
from app.auth import AuthenticatedUser
from app.errors import TradewindError
from components.formatting import stamp

if TYPE_CHECKING:
    from app.services import Services

UserCheck = Callable[[], Awaitable[AuthenticatedUser | None]]


class ApiKeysSection:
    """Built inside the settings page; `check_user` returns the session user or sends the browser to /login."""

    def __init__(self, services: Services, user_id: str, address: str, check_user: UserCheck) -> None:
        self.services, self.user_id, self.address, self.check_user = services, user_id, address, check_user

    async def build(self) -> None:
        with ui.card().classes("w-full").mark("api-keys"):
            ui.label("API keys").classes("text-lg font-bold")
            ui.label(
                "Keys for bots: send 'Authorization: Bearer <key>'. A read key sees orders and balances; a trade key "
                "also places and cancels orders. Keys cannot manage keys or the password."
            ).classes("text-sm")
            with ui.row().classes("w-full items-start gap-2"):
                self.label = ui.input("Label", value="My bot").props("dense outlined").mark("api-key-label")
                self.trade = ui.checkbox("May trade").mark("api-key-trade")
                self.addresses = (
                    ui.input("Allowed addresses (optional)")
                    .props('dense outlined hint="IPs or networks, comma-separated"')
                    .classes("grow")
                    .mark("api-key-addresses")
                )
            self.error = ui.label().classes("text-negative text-sm").mark("api-key-error")
            ui.button("Create key", on_click=self.create).mark("create-api-key")
            self.new_key = ui.column().classes("w-full")
            ui.separator()
            self.rows = ui.column().classes("w-full gap-1").mark("api-key-list")
            self.show(await self.services.api_keys.list_for_user(self.user_id))

    def show(self, keys: list[ApiKeyView]) -> None:
        self.rows.clear()
        with self.rows:
            if not keys:
                ui.label("No API keys yet.").classes("text-sm opacity-70")
            for key in keys:
                self._row(key)

    def _row(self, key: ApiKeyView) -> None:
        with ui.row().classes("w-full items-center justify-between no-wrap").mark("api-key-row"):
            with ui.row().classes("items-center gap-2"):
                ui.label(key.label).classes("font-bold")
                ui.label(f"{key.prefix}…").classes("font-mono text-sm opacity-70")
                for scope in key.scopes:
                    ui.badge(scope, color="positive" if scope == TRADE else "grey")
                used = f"last used {stamp(key.last_used_at)}" if key.last_used_at else "never used"
                ui.label(used).classes("text-xs opacity-60")
                if key.allowed_addresses:
                    ui.label("from " + ", ".join(key.allowed_addresses)).classes("text-xs opacity-60")
            ui.button("Revoke", on_click=lambda k=key: self.confirm_revoke(k)).props("flat dense color=negative").mark(
                "revoke-api-key"
            )

    def confirm_revoke(self, key: ApiKeyView) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Revoke the key '{key.label}' ({key.prefix}…)? Bots using it stop at once.")
            with ui.row():
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Revoke", on_click=lambda: self.revoke(dialog, key)).props("color=negative").mark(
                    "revoke-api-key-confirm"
                )
        dialog.open()

    async def create(self) -> None:
        if (await self.check_user()) is None:
            return
        scopes = [READ, TRADE] if self.trade.value else [READ]
        addresses = [part.strip() for part in (self.addresses.value or "").split(",") if part.strip()]
        try:
            created = await self.services.api_keys.create(
                self.user_id, self.label.value or "", scopes, addresses, self.address
            )
        except TradewindError as exc:
            self.error.set_text(exc.message)
            return
        self.error.set_text("")
        self._reveal(created.key)
        self.show(await self.services.api_keys.list_for_user(self.user_id))

    def _reveal(self, key: str) -> None:
        """The key, this once: it is not stored anywhere it could be shown again."""
        self.new_key.clear()
        with self.new_key, ui.card().classes("w-full bg-amber-50 dark:bg-amber-900"):
            ui.label("Copy the key now: it will not be shown again.").classes("font-bold")
            with ui.row().classes("w-full items-center no-wrap"):
                ui.label(key).classes("font-mono text-sm break-all").mark("new-api-key")
                ui.button(icon="content_copy", on_click=lambda: self._copy(key)).props(
                    'flat dense aria-label="Copy the key"'
                ).mark("copy-api-key").tooltip("Copy")
            ui.button("Done", on_click=self.new_key.clear).props("flat").mark("new-api-key-done")

    def _copy(self, key: str) -> None:
        ui.clipboard.write(key)
        ui.notify("Key copied.", type="positive")

    async def revoke(self, dialog: ui.dialog, key: ApiKeyView) -> None:
        dialog.close()
        if (await self.check_user()) is None:
            return
        try:
            await self.services.api_keys.revoke(self.user_id, key.id, self.address)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify(f"Key '{key.label}' revoked.", type="positive")
        self.show(await self.services.api_keys.list_for_user(self.user_id))
