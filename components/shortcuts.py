"""Keyboard shortcuts of the trade page and their help dialog (open with "?" or the keyboard button)."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui
from nicegui.events import KeyEventArguments

SHORTCUTS: list[tuple[str, str]] = [
    ("B", "Buy side"),
    ("S", "Sell side"),
    ("F", "Focus the amount field"),
    ("Esc", "Clear the ticket (amount, total, TP/SL)"),
    ("?", "Show this help"),
]


def install(actions: dict[str, Callable[[], None]]) -> ui.dialog:
    """Listen for the shortcuts (ignored while typing in a field); `actions` maps "b", "s", "f", "escape" to
    callables. Returns the help dialog so a button can open it too."""
    with ui.dialog() as dialog, ui.card().classes("min-w-[18rem]").mark("shortcuts-help"):
        ui.label("Keyboard shortcuts").classes("text-lg font-bold")
        for key, meaning in SHORTCUTS:
            with ui.row().classes("w-full justify-between gap-6"):
                ui.label(key).classes("font-mono px-2 rounded bg-grey-3 dark:bg-grey-9")
                ui.label(meaning)
        ui.button("Close", on_click=dialog.close).props("flat")
    handlers = {**{k.lower(): v for k, v in actions.items()}, "?": dialog.open}

    def on_key(event: KeyEventArguments) -> None:
        if not event.action.keydown or event.action.repeat:
            return
        if event.modifiers.ctrl or event.modifiers.alt or event.modifiers.meta:
            return
        handler = handlers.get(str(event.key.name).lower())
        if handler is not None:
            handler()

    ui.keyboard(on_key=on_key).mark("keyboard")
    return dialog
