"""/settings: accounts (paper reset with chosen balances, Binance testnet keys), password, log out everywhere,
webhooks."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from nicegui import ui

from app.auth import AuthenticatedUser
from app.errors import TradewindError
from components import session, theme, webhooks
from components.formatting import stamp
from components.live import LiveFeed

if TYPE_CHECKING:
    from app.accounts import AccountView
    from app.services import Services


def _assets(services: Services) -> list[str]:
    """Every asset of the traded symbols, quote assets first (USDT, then BTC, ETH, ...)."""
    quotes = {rules.quote for rules in services.rules.values()}
    bases = [rules.base for rules in services.rules.values() if rules.base not in quotes]
    return [*sorted(quotes), *dict.fromkeys(bases)]


def register(services: Services, _live: LiveFeed) -> None:
    @ui.page("/settings")
    async def settings_page() -> None:
        user = await session.current_user(services)
        if user is None:
            session.log_out()
            ui.navigate.to("/login")
            return
        accounts = await services.accounts.list_for_user(user.id)
        account = theme.selected_account(accounts)
        with (
            theme.frame("Settings", user.email, accounts=accounts, account=account),
            ui.column().classes("w-full max-w-3xl mx-auto gap-4"),
        ):
            ui.label("Settings").classes("text-2xl font-bold")
            _Settings(services, user.id, session.client_address()).build(accounts)
            await webhooks.create(services, user.id)


class _Settings:
    """The page's sections; every action re-checks the session user first."""

    def __init__(self, services: Services, user_id: str, address: str) -> None:
        self.services, self.user_id, self.address = services, user_id, address

    async def _user(self) -> AuthenticatedUser | None:
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.navigate.to("/login")
            return None
        return user

    def build(self, accounts: list[AccountView]) -> None:
        self.paper_id = next((a.id for a in accounts if a.venue == "paper"), None)
        with ui.card().classes("w-full").mark("accounts"):
            ui.label("Accounts").classes("text-lg font-bold")
            for account in accounts:
                self._account_row(account)
            self._add_testnet()
        self._reset()
        self._password()
        with ui.card().classes("w-full"):
            ui.label("Sessions").classes("text-lg font-bold")
            ui.label("End every browser session and API token of this user, including this one.").classes("text-sm")
            ui.button("Log out everywhere", on_click=self.log_out_everywhere).props("color=negative outline").mark(
                "logout-everywhere"
            )

    def _account_row(self, account: AccountView) -> None:
        text, color = theme.ENVIRONMENTS.get(account.venue, (account.venue, "grey"))
        with ui.row().classes("w-full items-center justify-between no-wrap").mark("account-row"):
            with ui.row().classes("items-center gap-2"):
                ui.badge(text, color=color).classes("text-black")
                ui.label(account.label).classes("font-bold")
                if account.api_key_hint:
                    ui.label(f"key {account.api_key_hint}").classes("font-mono text-sm opacity-70").mark("key-hint")
                if account.needs_new_key:
                    ui.badge("needs a new key", color="negative").mark("needs-new-key").tooltip(
                        "The server's encryption key changed: remove this account and add the key again."
                    )
                ui.label(f"since {stamp(account.created_at)}").classes("text-xs opacity-60")
            if account.venue != "paper":
                ui.button("Remove", on_click=lambda a=account: self.remove_account(a.id)).props(
                    "flat dense color=negative"
                ).mark("remove-account")

    def _add_testnet(self) -> None:
        ui.separator()
        ui.label("Add a Binance Spot Testnet key").classes("font-bold")
        with ui.row().classes("w-full items-start gap-2"):
            self.key_label = ui.input("Label", value="Binance testnet").props("dense outlined").mark("key-label")
            self.api_key = ui.input("API key").props("dense outlined autocomplete=off").classes("grow").mark("api-key")
            self.api_secret = (
                ui.input("API secret", password=True).props("dense outlined autocomplete=new-password").classes("grow")
            ).mark("api-secret")
        self.key_error = ui.label().classes("text-negative text-sm").mark("key-error")
        ui.button("Add key", on_click=self.add_account).mark("add-key")

    def _reset(self) -> None:
        defaults = self.services.settings.paper_balances
        with ui.card().classes("w-full").mark("paper-reset"):
            ui.label("Reset the paper account").classes("text-lg font-bold")
            ui.label("Cancels open orders, sets these balances and starts positions from zero. History stays.").classes(
                "text-sm"
            )
            with ui.row().classes("gap-2"):
                self.reset_amounts = {
                    asset: ui.input(asset, value=str(defaults.get(asset, 0)))
                    .props("dense outlined inputmode=decimal")
                    .classes("w-28")
                    .mark(f"reset-{asset.lower()}")
                    for asset in _assets(self.services)
                }
            self.reset_error = ui.label().classes("text-negative text-sm").mark("reset-error")
            with ui.dialog() as dialog, ui.card():
                ui.label("Reset the paper account? Open orders are canceled.")
                with ui.row():
                    ui.button("Cancel", on_click=dialog.close).props("flat")
                    ui.button("Reset", on_click=lambda: self.reset(dialog)).props("color=negative").mark(
                        "reset-confirm"
                    )
            ui.button("Reset paper account", on_click=dialog.open).props("outline").mark("reset")

    def _password(self) -> None:
        with ui.card().classes("w-full").mark("password-card"):
            ui.label("Change password").classes("text-lg font-bold")
            self.current = ui.input("Current password", password=True).props("dense outlined").mark("current-password")
            self.new = ui.input("New password", password=True).props('dense outlined hint="At least 8 characters"')
            self.new.mark("new-password")
            self.password_error = ui.label().classes("text-negative text-sm").mark("password-error")
            ui.button("Change password", on_click=self.change_password).mark("change-password")

    # ---- actions ------------------------------------------------------------------------------------------

    async def reset(self, dialog: ui.dialog) -> None:
        dialog.close()
        if (await self._user()) is None:
            return
        wanted = {asset: field.value.strip() for asset, field in self.reset_amounts.items() if field.value.strip()}
        try:
            if self.paper_id is None:
                raise TradewindError("This user has no paper account.")
            await self.services.portfolio.reset_paper(self.user_id, self.paper_id, wanted)
        except TradewindError as exc:
            self.reset_error.set_text(exc.message)
            return
        self.reset_error.set_text("")
        shown = ", ".join(f"{v} {k}" for k, v in wanted.items() if Decimal(v) != 0) or "all zero"
        ui.notify(f"Paper account reset: {shown}", type="positive")

    async def change_password(self) -> None:
        user = await self._user()
        if user is None:
            return
        try:
            version = await self.services.auth.change_password(
                user.id, self.current.value or "", self.new.value or "", self.address
            )
        except TradewindError as exc:
            self.password_error.set_text(exc.message)
            return
        # The change ends every other session (open pages hear it through the live feed); this one keeps going.
        session.keep(user, version)
        self.password_error.set_text("")
        self.current.set_value("")
        self.new.set_value("")
        ui.notify("Password changed. Other sessions were logged out.", type="positive")

    async def log_out_everywhere(self) -> None:
        if (await self._user()) is None:
            return
        await self.services.auth.log_out_everywhere(self.user_id)  # open pages hear it through the live feed
        session.log_out()
        ui.navigate.to("/login")

    async def add_account(self) -> None:
        if (await self._user()) is None:
            return
        try:
            await self.services.accounts.add_binance_account(
                self.user_id, self.api_key.value.strip(), self.api_secret.value, self.key_label.value.strip()
            )
        except TradewindError as exc:
            self.key_error.set_text(exc.message)
            return
        finally:
            self.api_secret.set_value("")  # the secret never stays in the page
        ui.notify("Testnet account added.", type="positive")
        ui.navigate.reload()

    async def remove_account(self, account_id: str) -> None:
        if (await self._user()) is None:
            return
        try:
            await self.services.accounts.delete_account(self.user_id, account_id)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify("Account removed.", type="positive")
        ui.navigate.reload()
