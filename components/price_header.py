"""The strip above the chart: symbol switcher (switches in place, see TradeScreen), last price, 24 h change,
high, low and volume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from nicegui import ui

from app.domain import SymbolRules
from app.market.models import Ticker
from components.formatting import compact, on_step


class PriceHeader:
    """Built once per page; `update(ticker)` is called from the shared live tick (<= 4 times a second)."""

    def __init__(
        self,
        symbols: Sequence[str],
        rules: SymbolRules,
        ticker: Ticker | None,
        on_symbol: Callable[[str], Awaitable[None]],
    ) -> None:
        self.rules = rules
        self._last: Decimal | None = None
        with ui.row().classes("w-full items-center gap-x-6 gap-y-1 px-3 py-2 tw-panel"):
            ui.select(list(symbols), value=rules.symbol, on_change=lambda e: on_symbol(e.value)).props(
                'dense borderless options-dense aria-label="Symbol"'
            ).classes("text-lg font-bold min-w-[8rem]").props("data-testid=symbol-switcher").mark("symbol-switcher")
            self.price = ui.label("—").classes("text-2xl font-bold font-mono").mark("last-price")
            self.price.props("data-testid=last-price")  # the browser test reads the live price here
            self.change = self._stat("24h change", "change")
            self.high = self._stat("24h high", "high")
            self.low = self._stat("24h low", "low")
            self.volume = self._stat(f"24h volume ({rules.base})", "volume")
        if ticker is not None:
            self.update(ticker)

    @staticmethod
    def _stat(caption: str, mark: str) -> ui.label:
        with ui.column().classes("gap-0"):
            ui.label(caption).classes("text-xs opacity-60")
            return ui.label("—").classes("text-sm font-mono").mark(mark)

    def update(self, ticker: Ticker) -> None:
        """Repaint from a ticker; the last price turns green/red by the direction of the latest move."""
        tick = self.rules.tick_size
        self.price.set_text(on_step(ticker.price, tick))
        if self._last is not None and ticker.price != self._last:
            up = ticker.price > self._last
            self.price.classes(
                add="text-positive" if up else "text-negative", remove="text-negative" if up else "text-positive"
            )
        self._last = ticker.price
        change = ticker.change_24h_pct
        self.change.set_text(f"{'+' if change > 0 else ''}{change}%")
        self.change.classes(
            add="text-positive" if change >= 0 else "text-negative",
            remove="text-negative" if change >= 0 else "text-positive",
        )
        self.high.set_text(on_step(ticker.high_24h, tick))
        self.low.set_text(on_step(ticker.low_24h, tick))
        self.volume.set_text(compact(ticker.volume_24h))
