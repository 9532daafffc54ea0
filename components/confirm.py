"""A yes/no confirmation dialog for actions that cannot be undone (halt trading, close a position)."""

from __future__ import annotations

from nicegui import ui


async def confirm(message: str, ok_label: str, *, danger: bool = True) -> bool:
    """Ask; True only when the confirm button was clicked (Cancel, Escape or a click outside: False)."""
    with ui.dialog() as dialog, ui.card().classes("max-w-sm").mark("confirm-dialog"):
        ui.label(message)
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps").mark("confirm-no")
            color = "negative" if danger else "primary"
            ui.button(ok_label, on_click=lambda: dialog.submit(True)).props(f"no-caps color={color}").mark(
                "confirm-yes"
            )
    answer = await dialog
    dialog.delete()
    return answer is True
