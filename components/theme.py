"""The one frame every page uses: colours, header, navigation. Pages never build their own header."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import app, ui

BRAND = "Tradewind"
COLORS = {"primary": "#2962ff", "positive": "#0ecb81", "negative": "#f6465d", "warning": "#f0b90b"}
BUY_COLOR = "positive"
SELL_COLOR = "negative"


def apply_colors() -> None:
    ui.colors(**COLORS)
    ui.dark_mode().bind_value(app.storage.user, "dark_mode")


@contextmanager
def public_frame(title: str) -> Iterator[None]:
    """Centered card for the login and register pages."""
    apply_colors()
    ui.page_title(f"{title} · {BRAND}")
    with ui.column().classes("absolute-center items-center w-full max-w-sm px-4"):
        ui.label(BRAND).classes("text-3xl font-bold text-primary")
        ui.label("Paper and testnet crypto trading desk").classes("text-sm opacity-70 mb-2")
        with ui.card().classes("w-full"):
            yield


@contextmanager
def frame(title: str, email: str) -> Iterator[None]:
    """Header with brand, navigation and the user menu, then the page content."""
    apply_colors()
    ui.page_title(f"{title} · {BRAND}")
    with ui.header().classes("items-center justify-between px-4 py-2 bg-primary"):
        with ui.row().classes("items-center gap-4"):
            ui.link(BRAND, "/").classes("text-xl font-bold text-white no-underline")
        with ui.row().classes("items-center gap-2"):
            ui.button(icon="dark_mode", on_click=_toggle_dark).props("flat round color=white").tooltip(
                "Dark / light"
            ).mark("theme-toggle")
            with ui.button(icon="account_circle").props("flat round color=white").mark("user-menu"), ui.menu():
                ui.menu_item(email).props("disable")
                ui.menu_item("Settings", on_click=lambda: ui.navigate.to("/settings"))
                ui.menu_item("Log out", on_click=lambda: ui.navigate.to("/logout")).mark("logout")
    with ui.column().classes("w-full p-4 gap-4"):
        yield


def _toggle_dark() -> None:
    storage = app.storage.user
    storage["dark_mode"] = not storage.get("dark_mode", False)
