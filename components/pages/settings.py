"""/settings: accounts (paper reset with chosen balances, Binance testnet keys), password, log out everywhere, API
keys for bots, webhooks, recent activity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from app.auth import AuthenticatedUser
from app.errors import TradewindError
from components import activity, session, theme, webhooks
from components.api_keys import ApiKeysSection
from components.formatting import stamp
from components.live import LiveFeed
from components.paper_accounts import PaperAccounts

if TYPE_CHECKING:
    from app.accounts import AccountView
    from app.services import Services


def register(services: Services, _live: LiveFeed) -> None:
    @ui.page("/settings")
    async def settings_page() -> None:
        user = await session.page_user(services)
        if user is None:
            return
        accounts = await services.accounts.list_for_user(user.id)
        account = theme.selected_account(accounts)
        with (
            theme.frame("Settings", user.email, accounts=accounts, account=account),
            ui.column().classes("w-full max-w-3xl mx-auto gap-4"),
        ):
            ui.label("Settings").classes("text-2xl font-bold")
            sections = _Settings(services, user.id, session.client_address())
            sections.build(accounts)
            await ApiKeysSection(services, user.id, sections.address, sections.check_user).build()
            await webhooks.create(services, user.id)
            await activity.create(services, user.id)


class _Settings:
    """The page's sections; every action re-checks the session user first."""

    def __init__(self, services: Services, user_id: str, address: str) -> None:
        self.services, self.user_id, self.address = services, user_id, address
        self.paper = PaperAccounts(services, user_id, self._still_user)

    async def check_user(self) -> AuthenticatedUser | None:
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.navigate.to("/login")
            return None
        return user

    async def _still_user(self) -> bool:
        return (await self.check_user()) is not None

    def build(self, accounts: list[AccountView]) -> None:
        # The first paper account is the default one: it cannot be removed.
        self.default_paper_id = next((a.id for a in accounts if a.venue == "paper"), None)
        with ui.card().classes("w-full").mark("accounts"):
            ui.label("Accounts").classes("text-lg font-bold")
            for account in accounts:
                self._account_row(account)
            self.paper.add_form()
            self._add_testnet()
        self.paper.balances_card()
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
            with ui.row().classes("items-center gap-1"):
                self.paper.row_actions(account)
                if account.id != self.default_paper_id:
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

    def _password(self) -> None:
        with ui.card().classes("w-full").mark("password-card"):
            ui.label("Change password").classes("text-lg font-bold")
            self.current = ui.input("Current password", password=True).props("dense outlined").mark("current-password")
            self.new = ui.input("New password", password=True).props('dense outlined hint="At least 8 characters"')
            self.new.mark("new-password")
            self.password_error = ui.label().classes("text-negative text-sm").mark("password-error")
            ui.button("Change password", on_click=self.change_password).mark("change-password")

    # ---- actions ------------------------------------------------------------------------------------------

    async def change_password(self) -> None:
        user = await self.check_user()
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
        if (await self.check_user()) is None:
            return
        await self.services.auth.log_out_everywhere(self.user_id, self.address)  # open pages hear it (live feed)
        session.log_out()
        ui.navigate.to("/login")

    async def add_account(self) -> None:
        if (await self.check_user()) is None:
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
        if (await self.check_user()) is None:
            return
        try:
            await self.services.accounts.delete_account(self.user_id, account_id)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify("Account removed.", type="positive")
        ui.navigate.reload()
