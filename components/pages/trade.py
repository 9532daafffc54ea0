"""/trade/{symbol}: the trading screen for a logged-in user (components/trade_screen.py), or a friendly 404 page
with links to the traded symbols when the symbol is unknown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from app.domain import normalize_symbol
from components import session, theme
from components.live import LiveFeed
from components.trade_screen import TradeScreen

if TYPE_CHECKING:
    from app.services import Services


def register(services: Services, live: LiveFeed) -> None:
    @ui.page("/trade/{symbol}")
    async def trade_page(symbol: str) -> None:
        user = await session.page_user(services)
        if user is None:
            return
        user_id = user.id  # read once: callbacks below run outside any request
        accounts = await services.accounts.list_for_user(user_id)
        account = theme.selected_account(accounts)
        rules = services.rules.get(normalize_symbol(symbol))
        with theme.frame(rules.symbol if rules else "Unknown symbol", user.email, accounts=accounts, account=account):
            if rules is None or account is None:
                _unknown_symbol(symbol, services.market.symbols)
                return
            await TradeScreen(services, live, user_id, account.id, rules.symbol).build()


def _unknown_symbol(symbol: str, known: tuple[str, ...]) -> None:
    with ui.column().classes("w-full items-center py-16 gap-3").mark("not-found"):
        ui.label("404").classes("text-5xl font-bold opacity-40")
        ui.label(f"There is no market {symbol.upper()[:20]} here.").classes("text-xl")
        ui.label("Pick one of the traded symbols:").classes("opacity-70")
        with ui.row().classes("gap-2"):
            for name in known:
                ui.link(name, f"/trade/{name}").classes("text-lg font-mono")
