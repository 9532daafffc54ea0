"""The paper-account pieces of /settings: add a paper account with a label, each row's reset and rename, and the
balances a reset (or a new account) starts with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from nicegui import ui

from app.errors import TradewindError

if TYPE_CHECKING:
    from app.accounts import AccountView
    from app.services import Services

UserCheck = Callable[[], Awaitable[bool]]
"""True when the page's user is still the session's user (else the page has navigated to /login)."""


def traded_assets(services: Services) -> list[str]:
    """Every asset of the traded symbols, quote assets first (USDT, then BTC, ETH, ...)."""
    quotes = {rules.quote for rules in services.rules.values()}
    bases = [rules.base for rules in services.rules.values() if rules.base not in quotes]
    return [*sorted(quotes), *dict.fromkeys(bases)]


class PaperAccounts:
    """Builds the paper parts of the settings page; every action re-checks the user first (`still_user`)."""

    def __init__(self, services: Services, user_id: str, still_user: UserCheck) -> None:
        self.services, self.user_id, self.still_user = services, user_id, still_user

    # ---- building -----------------------------------------------------------------------------------------

    def row_actions(self, account: AccountView) -> None:
        """The buttons of one account row: rename (any account), reset (paper)."""
        with ui.dialog() as rename_dialog, ui.card():
            label = ui.input("Label", value=account.label).props("dense outlined").mark(f"rename-label-{account.id}")
            with ui.row():
                ui.button("Cancel", on_click=rename_dialog.close).props("flat")
                ui.button("Rename", on_click=lambda: self.rename(rename_dialog, account, label.value)).mark(
                    f"rename-confirm-{account.id}"
                )
        ui.button("Rename", on_click=rename_dialog.open).props("flat dense").mark("rename", f"rename-{account.id}")
        if account.venue != "paper":
            return
        with ui.dialog() as reset_dialog, ui.card():
            ui.label(f"Reset {account.label}? Open orders are canceled.")
            with ui.row():
                ui.button("Cancel", on_click=reset_dialog.close).props("flat")
                ui.button("Reset", on_click=lambda: self.reset(reset_dialog, account)).props("color=negative").mark(
                    "reset-confirm", f"reset-confirm-{account.id}"
                )
        ui.button("Reset", on_click=reset_dialog.open).props("flat dense").mark("reset", f"reset-{account.id}")

    def add_form(self) -> None:
        ui.separator()
        ui.label("Add a paper account").classes("font-bold")
        with ui.row().classes("w-full items-start gap-2"):
            self.paper_label = ui.input("Label", placeholder="Strategy A").props("dense outlined").mark("paper-label")
            ui.button("Add paper account", on_click=self.add).mark("add-paper")
        self.add_error = ui.label().classes("text-negative text-sm").mark("paper-error")

    def balances_card(self) -> None:
        """The balances a reset sets and a new paper account starts with."""
        defaults = self.services.settings.paper_balances
        with ui.card().classes("w-full").mark("paper-reset"):
            ui.label("Paper balances").classes("text-lg font-bold")
            ui.label(
                "A paper account's Reset cancels its open orders, sets these balances and starts positions from "
                "zero; a new paper account starts with them too. History stays."
            ).classes("text-sm")
            with ui.row().classes("gap-2"):
                self.amounts = {
                    asset: ui.input(asset, value=str(defaults.get(asset, 0)))
                    .props("dense outlined inputmode=decimal")
                    .classes("w-28")
                    .mark(f"reset-{asset.lower()}")
                    for asset in traded_assets(self.services)
                }
            self.reset_error = ui.label().classes("text-negative text-sm").mark("reset-error")

    # ---- actions ------------------------------------------------------------------------------------------

    def _wanted(self) -> dict[str, str]:
        return {asset: field.value.strip() for asset, field in self.amounts.items() if field.value.strip()}

    async def reset(self, dialog: ui.dialog, account: AccountView) -> None:
        dialog.close()
        if not await self.still_user():
            return
        wanted = self._wanted()
        try:
            await self.services.portfolio.reset_paper(self.user_id, account.id, wanted)
        except TradewindError as exc:
            self.reset_error.set_text(exc.message)
            return
        self.reset_error.set_text("")
        shown = ", ".join(f"{v} {k}" for k, v in wanted.items() if Decimal(v) != 0) or "all zero"
        ui.notify(f"Paper account reset: {shown} ({account.label})", type="positive")

    async def add(self) -> None:
        if not await self.still_user():
            return
        try:
            balances = self.services.portfolio.starting_balances(self._wanted())
            await self.services.accounts.add_paper_account(self.user_id, self.paper_label.value or "", balances)
        except TradewindError as exc:
            self.add_error.set_text(exc.message)
            return
        ui.notify("Paper account added.", type="positive")
        ui.navigate.reload()

    async def rename(self, dialog: ui.dialog, account: AccountView, label: str) -> None:
        dialog.close()
        if not await self.still_user():
            return
        try:
            await self.services.accounts.rename_account(self.user_id, account.id, label or "")
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify("Account renamed.", type="positive")
        ui.navigate.reload()
