"""/ — the authenticated landing page (the trading screen replaces it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from app.domain import fmt
from components import session, theme

if TYPE_CHECKING:
    from app.services import Services


def register(services: Services) -> None:
    @ui.page("/")
    async def home_page() -> None:
        user = await session.current_user(services)
        if user is None:
            session.log_out()
            ui.navigate.to("/login")
            return
        accounts = await services.accounts.list_for_user(user.id)
        with theme.frame("Home", user.email):
            ui.label(f"Welcome, {user.email}").classes("text-2xl").mark("welcome")
            for account in accounts:
                with ui.card().classes("w-full max-w-md"):
                    ui.label(f"{account.label} · {account.venue}").classes("font-bold")
                    for balance in await services.accounts.balances(user.id, account.id):
                        ui.label(f"{balance.asset}: {fmt(balance.free)}").mark("balance")
