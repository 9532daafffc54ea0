"""Bottom tabs of the trade page: Open orders (cancel one, cancel all, cancel all of the page's symbol), Order
history, Trades (fills), Positions (close one), Balances. Rows come from the event payloads (full order/fill/balance
dicts); the page re-queries only on (re)connect, after a cancel-all, and positions after fills (their PnL is not in
any event)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from nicegui import ui

from app.domain import OrderStatus, SymbolRules
from components import edit_order_dialog
from components.blotter_rows import balance_row, fill_row, marked, order_row, position_row
from components.live_grid import LiveGrid
from components.theme import DOWN_TEXT, UP_TEXT

_SIDE_STYLE = f"(p) => ({{color: p.value === 'BUY' ? '{UP_TEXT}' : '{DOWN_TEXT}'}})"
_PNL_STYLE = f"(p) => ({{color: String(p.value).startsWith('-') ? '{DOWN_TEXT}' : '{UP_TEXT}'}})"


def _col(field: str, header: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "headerName": header, **extra}


_ORDER_COLUMNS = [
    _col("time", "Time", minWidth=150),
    _col("symbol", "Symbol"),
    _col("side", "Side", **{":cellStyle": _SIDE_STYLE}),
    _col("type", "Type", minWidth=120),
    _col("price", "Price"),
    _col("stop_price", "Stop"),
    _col("quantity", "Amount"),
    _col("filled_quantity", "Filled"),
    _col("status", "Status", minWidth=120),
]
_OPEN_COLUMNS = [
    *_ORDER_COLUMNS,
    _col("edit", "Edit", maxWidth=80, cellClass="text-primary cursor-pointer"),
    _col("action", "Action", maxWidth=90, cellClass="text-negative cursor-pointer"),
]
# Enter on a focused Cancel cell (cells are reached with Tab and the arrow keys): the row id is the order id.
_CANCEL_KEY_JS = """(e) => {
  const cell = e.key === 'Enter' && e.target.closest('.ag-cell[col-id=action]');
  const row = cell && cell.closest('[row-id]');
  if (row) emit(row.getAttribute('row-id'));
}"""
_HISTORY_COLUMNS = [*_ORDER_COLUMNS, _col("avg_fill_price", "Avg price"), _col("reject_reason", "Reason")]
_FILL_COLUMNS = [
    _col("time", "Time", minWidth=150),
    _col("symbol", "Symbol"),
    _col("side", "Side", **{":cellStyle": _SIDE_STYLE}),
    _col("price", "Price"),
    _col("quantity", "Amount"),
    _col("fee", "Fee"),
    _col("liquidity", "Role"),
]
_POSITION_COLUMNS = [
    _col("symbol", "Symbol"),
    _col("quantity", "Size"),
    _col("avg_entry_price", "Entry"),
    _col("market_price", "Market"),
    _col("unrealized_pnl", "Unrealized PnL", **{":cellStyle": _PNL_STYLE}),
    _col("realized_pnl", "Realized PnL", **{":cellStyle": _PNL_STYLE}),
    _col("action", "Action", maxWidth=90, cellClass="text-negative cursor-pointer"),
]
_BALANCE_COLUMNS = [_col("asset", "Asset"), _col("free", "Free"), _col("locked", "Locked"), _col("total", "Total")]


class Blotter:
    """The five tabs; the page feeds it rows and events."""

    def __init__(
        self,
        rules: Mapping[str, SymbolRules],
        on_cancel: Callable[[str], Awaitable[None]],
        on_cancel_all: Callable[[], Awaitable[None]],
        on_modify: edit_order_dialog.Modify,
        *,
        symbol: str,
        on_cancel_symbol: Callable[[], Awaitable[None]],
        on_close: Callable[[str], Awaitable[None]],
        extra_actions: Callable[[], None] | None = None,
    ) -> None:
        """`extra_actions` builds more buttons next to "Cancel all" (the Export menu)."""
        self.rules = rules
        self.on_cancel = on_cancel
        self.on_close = on_close
        self.on_modify = on_modify
        self._positions: dict[str, dict[str, Any]] = {}  # raw (exact) positions by symbol
        with ui.column().classes("w-full gap-0 tw-panel"):
            with ui.row().classes("w-full items-center justify-between no-wrap pr-2"):
                # min-w-0 lets the tabs shrink on a phone; Quasar then scrolls them with arrows.
                with (
                    ui.tabs()
                    .props("dense no-caps align=left inline-label mobile-arrows outside-arrows")
                    .classes("grow min-w-0") as tabs
                ):
                    self.open_tab = ui.tab("open", "Open orders").mark("tab-open")
                    ui.tab("history", "Order history").mark("tab-history")
                    ui.tab("fills", "Trades").mark("tab-fills")
                    ui.tab("positions", "Positions").mark("tab-positions")
                    ui.tab("balances", "Balances").mark("tab-balances")
                with ui.row().classes("items-center gap-1 no-wrap"):
                    if extra_actions is not None:
                        extra_actions()
                    self.cancel_symbol = ui.button(on_click=on_cancel_symbol).props("flat dense no-caps color=negative")
                    self.cancel_symbol.mark("cancel-symbol")
                    ui.button("Cancel all", on_click=on_cancel_all).props("flat dense no-caps color=negative").mark(
                        "cancel-all"
                    )
            # Plain containers instead of q-tab-panels: Quasar mounts a panel only when shown, and a grid that is
            # not mounted would miss the transactions sent meanwhile. Hidden grids stay mounted (display: none).
            self.open_orders = self._panel(_OPEN_COLUMNS, "No open orders", "open-orders")
            self.open_orders.on("cellClicked", self._cell_clicked)
            self.open_orders.on("keydown", self._cancel_key, js_handler=_CANCEL_KEY_JS)
            self.history = self._panel(_HISTORY_COLUMNS, "No orders yet", "order-history")
            self.fills = self._panel(_FILL_COLUMNS, "No trades yet", "fills")
            self.positions = self._panel(_POSITION_COLUMNS, "No positions", "positions")
            self.positions.on("cellClicked", self._position_clicked)
            self.balances = self._panel(_BALANCE_COLUMNS, "No balances", "balances")
        self._panels = {
            "open": self.open_orders,
            "history": self.history,
            "fills": self.fills,
            "positions": self.positions,
            "balances": self.balances,
        }
        self.tabs = tabs
        tabs.set_value("open")
        tabs.on_value_change(self._show)
        self._show()
        self._refresh_tab_label()
        self.set_symbol(symbol)

    def set_symbol(self, symbol: str) -> None:
        """The page's symbol: what "Cancel all <symbol>" cancels."""
        self.cancel_symbol.set_text(f"Cancel all {symbol}")

    @staticmethod
    def _panel(columns: list[dict[str, Any]], empty: str, mark: str) -> LiveGrid:
        grid = LiveGrid(columns, empty=empty).classes("w-full h-64")
        grid.mark(mark)
        return grid

    def _show(self) -> None:
        current = self.tabs.value
        for name, grid in self._panels.items():
            grid.set_visibility(name == current)

    async def _cell_clicked(self, event: Any) -> None:
        args = event.args or {}
        if not isinstance(args.get("data"), dict):
            return
        if args.get("colId") == "action":
            await self.on_cancel(str(args["data"]["id"]))
        elif args.get("colId") == "edit":
            row = self.open_orders.row(str(args["data"]["id"]))  # the server's copy: current, and complete
            if row is not None:
                edit_order_dialog.open_for(row, self.on_modify)

    async def _position_clicked(self, event: Any) -> None:
        args = event.args or {}
        data = args.get("data")
        if args.get("colId") == "action" and isinstance(data, dict) and data.get("action"):
            await self.on_close(str(data["symbol"]))

    async def _cancel_key(self, event: Any) -> None:
        if isinstance(event.args, str) and self.open_orders.row(event.args) is not None:
            await self.on_cancel(event.args)

    # ---- feeding ------------------------------------------------------------------------------------------

    def load(self, orders: list[dict[str, Any]], fills: list[dict[str, Any]], balances: list[dict[str, Any]]) -> None:
        """Fill every tab from fresh queries (page open, reconnect, cancel-all)."""
        rows = [(order_row(o, self.rules), OrderStatus(o["status"]).is_terminal) for o in orders]
        self.open_orders.replace_all(row for row, terminal in rows if not terminal)
        self.history.replace_all(row for row, terminal in rows if terminal)
        self.fills.replace_all(fill_row(f, self.rules) for f in fills)
        self.balances.replace_all(balance_row(b) for b in balances)
        self._refresh_tab_label()

    def order(self, order: dict[str, Any]) -> None:
        """An order changed: it lives in Open orders until terminal, then in Order history."""
        known = self.open_orders.row(order["id"]) or self.history.row(order["id"])
        if known is not None and (
            known["updated_at"] > order["updated_at"]
            or (OrderStatus(known["status"]).is_terminal and not OrderStatus(order["status"]).is_terminal)
        ):
            return  # an older snapshot arriving late never overwrites a newer state
        if OrderStatus(order["status"]).is_terminal:
            self.open_orders.remove_rows([order["id"]])
            self.history.upsert([order_row(order, self.rules)])
        else:
            self.open_orders.upsert([order_row(order, self.rules)])
        self._refresh_tab_label()

    def fill(self, fill: dict[str, Any]) -> None:
        self.fills.upsert([fill_row(fill, self.rules)])

    def set_balances(self, balances: list[dict[str, Any]]) -> None:
        rows = [balance_row(b) for b in balances]
        self.balances.remove_rows([r["id"] for r in self.balances.rows() if r["id"] not in {b["id"] for b in rows}])
        self.balances.upsert(rows)

    def set_positions(self, positions: list[dict[str, Any]]) -> None:
        self._positions = {p["symbol"]: p for p in positions}
        self.positions.remove_rows([r["id"] for r in self.positions.rows() if r["id"] not in self._positions])
        self.positions.upsert([position_row(p, self.rules) for p in positions])

    def mark_price(self, symbol: str, price: Decimal) -> None:
        """A new last price: the position's market price and unrealized PnL (no DB work)."""
        position = self._positions.get(symbol)
        valued = marked(position, price) if position else None
        if valued is not None:
            self._positions[symbol] = valued
            self.positions.upsert([position_row(valued, self.rules)])

    def open_order_rows(self) -> list[dict[str, Any]]:
        return self.open_orders.rows()

    def _refresh_tab_label(self) -> None:
        count = len(self.open_orders.rows())
        self.open_tab.props(f'label="Open orders ({count})"')
