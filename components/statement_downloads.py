"""The blotter's Export menu: CSV statements (fills, orders) of the page's account for the last 30 days, the same
bytes as GET /api/trading/fills.csv and orders.csv (longer or other ranges: the API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nicegui import ui

from app.errors import TradewindError
from app.statements import Kind

if TYPE_CHECKING:
    from app.services import Services


class StatementDownloads:
    def __init__(
        self, services: Services, user_id: str, account_id: str, user_ok: Callable[[], Awaitable[bool]]
    ) -> None:
        self.services, self.user_id, self.account_id, self.user_ok = services, user_id, account_id, user_ok

    def menu(self) -> None:
        """A flat "Export" button whose menu offers the two statements."""
        with ui.button("Export", icon="download").props("flat dense no-caps").mark("export"), ui.menu():
            ui.menu_item("Trades CSV (30 days)", on_click=lambda: self.download("fills")).mark("export-fills")
            ui.menu_item("Orders CSV (30 days)", on_click=lambda: self.download("orders")).mark("export-orders")

    async def download(self, kind: Kind) -> None:
        if not await self.user_ok():
            return
        statements = self.services.statements
        try:
            statement = await statements.prepare(self.user_id, kind, self.account_id, None, None)
            content = await statements.content(statement)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.download.content(content, statement.filename, "text/csv")
