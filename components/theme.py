"""The one frame every page uses: colours, header, navigation. Pages never build their own header.

The authenticated header carries what must always be visible on a trading screen: the environment badge
(PAPER / TESTNET) of the selected account, the account picker, the connection status, the theme toggle and the
user menu.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from nicegui import app, ui

from components import session

if TYPE_CHECKING:
    from app.accounts import AccountView

BRAND = "Tradewind"
COLORS = {"primary": "#2962ff", "positive": "#0ecb81", "negative": "#f6465d", "warning": "#f0b90b"}
BUY_COLOR = "positive"
SELL_COLOR = "negative"
UP_HEX = COLORS["positive"]
DOWN_HEX = COLORS["negative"]
# Up/down text in markup and grid cells: CSS variables that follow the theme (see _CSS), so one markup serves both.
UP_TEXT = "var(--tw-up)"
DOWN_TEXT = "var(--tw-down)"
ENVIRONMENTS = {"paper": ("PAPER", "warning"), "binance-testnet": ("TESTNET", "info")}

# Flips the connection badge from the browser's own socket state: the server cannot tell a tab it is offline.
_CONNECTION_JS = """
setInterval(() => {
  const el = document.getElementById('c%d');
  if (!el) return;
  const ok = !!(window.socket && window.socket.connected);
  el.textContent = ok ? 'Live' : 'Offline';
  el.classList.toggle('bg-positive', ok);
  el.classList.toggle('bg-negative', !ok);
}, 1000);
"""


# Quasar marks the theme with `body--dark` / `body--light`; panels and the page background follow it.
# Text contrast >= 4.5:1 (WCAG AA) in both themes: the brand green/red are bright, right for text on the dark
# panels but not on white, so light text uses darker shades; a coloured button or badge has black text (white on
# the bright green is 2.1:1); primary and red text are lighter on the dark panels and grids.
_CSS = """
body { background: #f5f5f5; --tw-up: #007a4d; --tw-down: #d0213a; }
body.body--dark { background: #0b0e11; --tw-up: #0ecb81; --tw-down: #ff6b7a; }
.tw-panel { background: #ffffff; border-radius: 4px; }
.body--dark .tw-panel { background: #181a20; }
.tw-muted { color: #707a8a; }
.tw-up { color: var(--tw-up); }
.tw-down { color: var(--tw-down); }
.body--light .nicegui-link { color: #1d4ed8; }
/* In NiceGUI's `overrides` layer: Quasar's !important classes (text-white, no-outline) sit in a later layer, and
   for !important rules the earlier layer wins (an unlayered rule would lose). */
@layer overrides {
  .body--light .text-positive { color: #007a4d !important; }
  .body--light .text-negative { color: #d0213a !important; }
  .body--dark .text-negative { color: #ff6b7a !important; }
  .body--dark .text-primary { color: #6f9bff !important; }
  .q-btn.bg-positive, .q-btn.bg-negative, .q-badge.bg-positive, .q-badge.bg-negative { color: #000 !important; }
  /* A visible keyboard focus everywhere (Quasar's own is a faint background; AG Grid's a thin border). */
  :focus-visible { outline: 2px solid #5b8cff !important; outline-offset: 1px; }
}
"""


def apply_colors() -> None:
    """Brand colours and the remembered dark/light choice (dark by default, like exchange screens)."""
    ui.colors(**COLORS)
    ui.add_css(_CSS)
    app.storage.user.setdefault("dark_mode", True)
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


def selected_account(accounts: Sequence[AccountView]) -> AccountView | None:
    """The account chosen in the picker (remembered per browser session), else the first (the paper account)."""
    wanted = app.storage.user.get("account_id")
    return next((a for a in accounts if a.id == wanted), accounts[0] if accounts else None)


@contextmanager
def frame(
    title: str, email: str, *, accounts: Sequence[AccountView] = (), account: AccountView | None = None
) -> Iterator[None]:
    """Header (brand, environment badge, account picker, connection, theme, user menu), then the page content."""
    apply_colors()
    ui.page_title(f"{title} · {BRAND}")
    # Wraps on a phone: the account picker and the buttons move under the brand and the environment badge.
    with ui.header().classes("items-center justify-between px-3 py-1 bg-[#181a20] gap-x-2 gap-y-0 flex-wrap"):
        with ui.row().classes("items-center gap-3 flex-nowrap"):
            ui.link(BRAND, "/").classes("text-lg font-bold text-white no-underline")
            if account is not None:
                text, color = ENVIRONMENTS.get(account.venue, (account.venue.upper(), "grey"))
                badge = ui.badge(text, color=color).classes("text-black font-bold px-2")
                badge.props("data-testid=environment").mark("environment")
        with ui.row().classes("items-center gap-1 flex-nowrap"):
            if accounts and account is not None:
                _account_picker(accounts, account)
            status = ui.badge("Live", color="positive").classes("mx-1").mark("connection")
            status.tooltip("Connection to the server")
            ui.add_body_html(f"<script>{_CONNECTION_JS % status.id}</script>")
            ui.button(icon="contrast", on_click=_toggle_dark).props(
                'flat round dense color=white aria-label="Dark or light theme"'
            ).tooltip("Dark / light").mark("theme-toggle")
            user_menu = ui.button(icon="account_circle").props('flat round dense color=white aria-label="User menu"')
            with user_menu.mark("user-menu"), ui.menu():
                ui.menu_item(email).props("disable")
                ui.menu_item("Trade", on_click=lambda: ui.navigate.to("/"))
                ui.menu_item("Portfolio", on_click=lambda: ui.navigate.to("/portfolio")).mark("to-portfolio")
                ui.menu_item("Settings", on_click=lambda: ui.navigate.to("/settings")).mark("to-settings")
                ui.menu_item("Log out", on_click=session.leave).mark("logout")
    with ui.column().classes("w-full p-2 gap-2"):
        yield


def _account_picker(accounts: Sequence[AccountView], account: AccountView) -> None:
    options = {a.id: f"{a.label} · {ENVIRONMENTS.get(a.venue, (a.venue,))[0]}" for a in accounts}

    def choose(account_id: str) -> None:
        app.storage.user["account_id"] = account_id
        ui.navigate.reload()  # every panel of the page belongs to the account: rebuild them all

    ui.select(options, value=account.id, on_change=lambda e: choose(e.value)).props(
        "dense options-dense dark standout"
    ).classes("min-w-[9rem] text-sm").mark("account-picker")


def _toggle_dark() -> None:
    storage = app.storage.user
    storage["dark_mode"] = not storage.get("dark_mode", True)
