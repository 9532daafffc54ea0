"""/ — sends a logged-in person to the trading screen of the first configured symbol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui
from starlette.responses import RedirectResponse

if TYPE_CHECKING:
    from app.services import Services


def register(services: Services) -> None:
    @ui.page("/")
    def home_page() -> RedirectResponse:
        # The auth middleware already sent anonymous visitors to /login.
        return RedirectResponse(f"/trade/{services.market.symbols[0]}")
