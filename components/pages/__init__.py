"""Page registration: main.py calls `register_pages(services)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import live, session
from components.pages import home, login, portfolio, settings, trade

if TYPE_CHECKING:
    from app.services import Services


def register_pages(services: Services) -> None:
    session.install(services)
    feed = live.install(services)
    login.register(services)
    home.register(services)
    trade.register(services, feed)
    settings.register(services, feed)
    portfolio.register(services)
