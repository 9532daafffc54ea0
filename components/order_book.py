"""Order book (asks above, spread, bids below, depth bars) and recent public trades.

Each side is one `ui.html` element repainted as a whole on the live tick: one small element update instead of
dozens of label updates. A click on a level sends its price (read from `data-price` in the browser) to
`on_price`, which fills the order ticket.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from html import escape

from nicegui import ui

from app.domain import SymbolRules
from app.market.models import Depth, PriceLevel, Trade
from components.formatting import clock, on_step
from components.theme import DOWN_HEX, UP_HEX

LEVELS = 10
_CLICK_JS = "(e) => { const row = e.target.closest('[data-price]'); if (row) emit(row.dataset.price); }"


class OrderBook:
    """Book and trades panels; `update(depth, trades)` is called from the shared live tick."""

    def __init__(self, rules: SymbolRules, on_price: Callable[[str], None]) -> None:
        self.rules = rules
        self.on_price = on_price
        with ui.column().classes("w-full gap-0 p-2 tw-panel text-xs font-mono"):
            ui.label("Order book").classes("text-sm font-bold font-sans mb-1")
            _header(f"Price ({rules.quote})", f"Amount ({rules.base})", "Total")
            # Our own markup built from numbers only: nothing to sanitize, and DOMPurify would cost per tick.
            self.asks = ui.html("", sanitize=False).classes("w-full cursor-pointer").mark("book-asks")
            self.spread = ui.label("—").classes("w-full text-center text-base font-bold py-1").mark("spread")
            self.bids = ui.html("", sanitize=False).classes("w-full cursor-pointer").mark("book-bids")
            for side in (self.asks, self.bids):
                side.on("click", self._clicked, js_handler=_CLICK_JS)
        with ui.column().classes("w-full gap-0 p-2 tw-panel text-xs font-mono"):
            ui.label("Recent trades").classes("text-sm font-bold font-sans mb-1")
            _header(f"Price ({rules.quote})", f"Amount ({rules.base})", "Time")
            self.trades = ui.html("", sanitize=False).classes("w-full cursor-pointer").mark("trades")
            self.trades.on("click", self._clicked, js_handler=_CLICK_JS)

    def _clicked(self, event: object) -> None:
        price = getattr(event, "args", None)
        if isinstance(price, str) and price:
            self.on_price(price)

    def update(self, depth: Depth | None, trades: list[Trade]) -> None:
        """Repaint both panels (called at most 4 times a second)."""
        if depth is not None:
            asks = depth.asks[:LEVELS]
            bids = depth.bids[:LEVELS]
            biggest = max((q for _, q in (*asks, *bids)), default=Decimal(1)) or Decimal(1)
            self.asks.set_content(self._side(tuple(reversed(asks)), biggest, DOWN_HEX))
            self.bids.set_content(self._side(bids, biggest, UP_HEX))
            if asks and bids:
                spread = asks[0][0] - bids[0][0]
                mid = (asks[0][0] + bids[0][0]) / 2
                pct = spread / mid * 100 if mid else Decimal(0)
                self.spread.set_text(f"Spread {on_step(spread, self.rules.tick_size)} ({pct:.3f}%)")
        self.trades.set_content("".join(self._trade_row(t) for t in trades))

    def _side(self, levels: tuple[PriceLevel, ...], biggest: Decimal, color: str) -> str:
        tick, step = self.rules.tick_size, self.rules.step_size
        rows = []
        for price, qty in levels:
            width = int(qty / biggest * 100)
            shown = on_step(price, tick)
            rows.append(
                f'<div data-price="{price}" class="tw-row" title="Use {escape(shown)}" '
                f'style="background:linear-gradient(to left,{color}26 {width}%,transparent {width}%)">'
                f'<span style="color:{color}">{shown}</span><span>{on_step(qty, step)}</span>'
                f"<span>{on_step(price * qty, Decimal('0.01'))}</span></div>"
            )
        return "".join(rows)

    def _trade_row(self, trade: Trade) -> str:
        color = UP_HEX if trade.side == "BUY" else DOWN_HEX
        shown = on_step(trade.price, self.rules.tick_size)
        return (
            f'<div data-price="{trade.price}" class="tw-row"><span style="color:{color}">{shown}</span>'
            f"<span>{on_step(trade.qty, self.rules.step_size)}</span><span>{clock(trade.ts)}</span></div>"
        )


def _header(*captions: str) -> None:
    ui.add_css(
        ".tw-row{display:grid;grid-template-columns:1fr 1fr 1fr;padding:1px 4px;line-height:1.35}"
        ".tw-row span:nth-child(n+2){text-align:right}.tw-row:hover{outline:1px solid rgba(132,142,156,.4)}"
    )
    with ui.element("div").classes("tw-row w-full opacity-60"):
        for caption in captions:
            ui.label(caption)
