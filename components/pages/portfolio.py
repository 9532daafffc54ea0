"""/portfolio: the selected account's equity curve in USDT (1m / 1h / 1d) and its performance per symbol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui

from app.errors import TradewindError
from components import session, theme

if TYPE_CHECKING:
    from app.services import Services

INTERVALS = {"1m": "24 h", "1h": "30 days", "1d": "1 year"}
_COLUMNS = [
    {"name": "symbol", "label": "Symbol", "field": "symbol", "align": "left"},
    {"name": "realized_pnl", "label": "Realized PnL (USDT)", "field": "realized_pnl", "align": "right"},
    {"name": "fees", "label": "Fees paid (USDT)", "field": "fees", "align": "right"},
]


def register(services: Services) -> None:
    @ui.page("/portfolio")
    async def portfolio_page() -> None:
        user = await session.page_user(services)
        if user is None:
            return
        accounts = await services.accounts.list_for_user(user.id)
        account = theme.selected_account(accounts)
        with theme.frame("Portfolio", user.email, accounts=accounts, account=account):
            if account is None:
                return
            await _Portfolio(services, user.id, account.id).build()


class _Portfolio:
    def __init__(self, services: Services, user_id: str, account_id: str) -> None:
        self.services, self.user_id, self.account_id = services, user_id, account_id

    async def build(self) -> None:
        history = self.services.history
        performance = await history.performance(self.user_id, self.account_id)
        with ui.column().classes("w-full max-w-5xl mx-auto gap-4"):
            with ui.row().classes("w-full items-end gap-8"):
                _figure("Equity (USDT)", performance["equity"], "equity")
                _figure("Realized PnL (USDT)", performance["realized_pnl"], "realized-pnl")
                _figure("Fees paid (USDT)", performance["fees"], "fees")
            with ui.column().classes("w-full tw-panel p-2 gap-1"):
                with ui.row().classes("w-full items-center justify-between"):
                    ui.label("Equity curve").classes("font-bold")
                    self.interval = (
                        ui.toggle(
                            {key: f"{key} · {reach}" for key, reach in INTERVALS.items()},
                            value="1h",
                            on_change=self.show_curve,
                        )
                        .props("dense no-caps")
                        .mark("interval")
                    )
                self.chart = ui.echart(_chart_options()).classes("w-full h-72").mark("equity-chart")
            with ui.column().classes("w-full tw-panel p-2 gap-1"):
                ui.label("Performance by symbol").classes("font-bold")
                ui.table(columns=_COLUMNS, rows=performance["symbols"], row_key="symbol").classes("w-full").props(
                    'flat dense no-data-label="No trades yet"'
                ).mark("performance")
        await self.show_curve()

    async def show_curve(self) -> None:
        # Re-checked: the toggle's handler runs long after the page's request.
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.navigate.to("/login")
            return
        try:
            curve = await self.services.history.equity_curve(self.user_id, self.account_id, self.interval.value)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        # Plotted as numbers (a chart needs them); the exact strings are in the figures and the API.
        self.chart.options["series"][0]["data"] = [[p["t"], float(p["equity"])] for p in curve["points"]]
        self.chart.update()


def _figure(label: str, value: str | None, mark: str) -> None:
    with ui.column().classes("gap-0"):
        ui.label(label).classes("text-xs tw-muted")
        ui.label(value or "0").classes("text-2xl font-mono").mark(mark)


def _chart_options() -> dict[str, Any]:
    return {
        "animation": False,
        "grid": {"left": 60, "right": 16, "top": 16, "bottom": 32},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "scale": True},
        "series": [
            {"type": "line", "name": "Equity", "showSymbol": False, "data": [], "color": theme.COLORS["primary"]}
        ],
    }
