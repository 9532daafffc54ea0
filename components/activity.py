""" "Recent activity" on /settings: the newest account actions (logins, password and key changes, paper resets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from app.activity import ActivityView
from components.formatting import stamp

if TYPE_CHECKING:
    from app.services import Services

SHOWN = 20

_TITLES = {
    "REGISTERED": "Account created",
    "LOGIN_SUCCEEDED": "Logged in",
    "LOGIN_FAILED": "Failed login",
    "LOGGED_OUT_EVERYWHERE": "Logged out everywhere",
    "PASSWORD_CHANGED": "Password changed",
    "EXCHANGE_KEY_ADDED": "Exchange key added",
    "EXCHANGE_KEY_REMOVED": "Exchange key removed",
    "API_KEY_CREATED": "API key created",
    "API_KEY_REVOKED": "API key revoked",
    "PAPER_RESET": "Paper account reset",
    "TRADING_STATE_CHANGED": "Trading state changed",
}


async def create(services: Services, user_id: str) -> None:
    """The card with the user's newest SHOWN records (the full history: GET /api/activity)."""
    records = await services.activity.recent(user_id, SHOWN)
    with ui.card().classes("w-full").mark("activity"):
        ui.label("Recent activity").classes("text-lg font-bold")
        if not records:
            ui.label("Nothing yet.").classes("text-sm opacity-70")
        for record in records:
            _row(record)


def _row(record: ActivityView) -> None:
    with ui.row().classes("w-full items-center gap-3 no-wrap text-sm").mark("activity-row"):
        ui.label(stamp(record.ts)).classes("font-mono text-xs opacity-60")
        title = _TITLES.get(record.kind, record.kind)
        ui.label(title).classes("font-bold" + (" text-negative" if record.kind == "LOGIN_FAILED" else ""))
        ui.label(_describe(record)).classes("opacity-80")


# What a row shows of each kind's detail (exchange accounts by their key hint: the label is the account list's).
_SHOWN_DETAIL = {
    "API_KEY_CREATED": ("label", "prefix", "scopes"),
    "API_KEY_REVOKED": ("label", "prefix"),
    "EXCHANGE_KEY_ADDED": ("key",),
    "EXCHANGE_KEY_REMOVED": ("key",),
    "PAPER_RESET": ("balances",),
    "TRADING_STATE_CHANGED": ("account", "state"),
}


def _describe(record: ActivityView) -> str:
    detail = record.detail
    parts = [detail[name] for name in _SHOWN_DETAIL.get(record.kind, ()) if detail.get(name)]
    if record.address:
        parts.append(f"from {record.address}")
    return " · ".join(parts)
