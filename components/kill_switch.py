"""The kill switch of the trade screen's header: the account's trading state (ACTIVE, REDUCE_ONLY, HALTED) and a
menu to change it, each change confirmed first. TRADING_STATE events (from this page, another tab or a bot) move
it; the service (app/trading_state_service.py) does the work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nicegui import ui

from app.errors import TradewindError
from components.confirm import confirm

if TYPE_CHECKING:
    from app.services import Services

_LOOK = {  # state -> (button text, icon, colour)
    "ACTIVE": ("Trading active", "play_circle", "positive"),
    "REDUCE_ONLY": ("Reduce-only", "trending_down", "warning"),
    "HALTED": ("Trading halted", "block", "negative"),
}
_CHOICES = {  # state -> (menu text, what the confirmation says)
    "ACTIVE": ("Resume trading", "Allow every order on this account again?"),
    "REDUCE_ONLY": ("Reduce-only", "Refuse every order that would open or grow a position on this account?"),
    "HALTED": ("Halt trading", "Cancel every open order of this account and refuse new ones until you resume?"),
}


class KillSwitch:
    def __init__(
        self, services: Services, user_id: str, account_id: str, state: str, user_ok: Callable[[], Awaitable[bool]]
    ) -> None:
        self.services, self.user_id, self.account_id = services, user_id, account_id
        self.user_ok = user_ok
        with ui.button().props("dense no-caps unelevated").mark("trading-state") as self.button, ui.menu():
            for choice, (text, _) in _CHOICES.items():
                ui.menu_item(text, on_click=lambda c=choice: self.ask(c)).mark(f"trading-state-{choice.lower()}")
        self.show(state)

    def show(self, state: str) -> None:
        """Display `state` (also called for TRADING_STATE events)."""
        self.state = state
        text, icon, colour = _LOOK.get(state, _LOOK["ACTIVE"])
        self.button.set_text(text)
        self.button.props(f"icon={icon} color={colour}")

    async def ask(self, state: str) -> None:
        if state == self.state or not await confirm(_CHOICES[state][1], _CHOICES[state][0]):
            return
        if not await self.user_ok():
            return
        try:
            changed = await self.services.trading.change(self.user_id, self.account_id, state)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        self.show(changed["state"])
        canceled = changed["canceled"]
        suffix = f"; canceling {canceled} open order{'s' if canceled != 1 else ''}" if canceled else ""
        ui.notify(f"{_LOOK[changed['state']][0]}{suffix}", type="info")
