"""Order book (asks above, spread, bids below, depth bars) and recent public trades.

Each side is one `ui.html` element repainted as a whole on a live flush: one small element update instead of
dozens of label updates. The markup depends only on the symbol and the market data, and every page of a symbol gets
the same `Depth` and trades list from one flush, so it is built once per flush and shared (`_paint`), not once per
page. A click on a level sends its price (read from `data-price` in the browser) to `on_price`, which fills the
order ticket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from nicegui import ui

from app.domain import SymbolRules
from app.market.models import Depth, PriceLevel, Trade
from components.formatting import clock, on_step
from components.theme import DOWN_HEX, UP_HEX

LEVELS = 10
_CLICK_JS = "(e) => { const row = e.target.closest('[data-price]'); if (row) emit(row.dataset.price); }"
# From the keyboard each list (asks, bids, trades) is one tab stop: its rows are replaced up to 4 times a second, so
# they could not keep the focus. Enter or Space uses the price nearest the spread (the newest trade).
_KEY_JS = """(e) => {
  if (e.key !== 'Enter' && e.key !== ' ') return;
  const rows = e.target.querySelectorAll('[data-price]');
  const row = e.target.dataset.pick === 'last' ? rows[rows.length - 1] : rows[0];
  if (row) { e.preventDefault(); emit(row.dataset.price); }
}"""


@dataclass(frozen=True, slots=True)
class _Painted:
    """Markup for one symbol, with the very objects it was built from (held, so their identity stays unique)."""

    depth: Depth | None
    trades: list[Trade]
    asks: str | None  # None: no depth yet, keep what is shown
    bids: str | None
    spread: str | None
    trades_html: str


_last_painted: dict[str, _Painted] = {}


class OrderBook:
    """Book and trades panels; `update(depth, trades)` is called from the shared live flush."""

    def __init__(self, rules: SymbolRules, on_price: Callable[[str], None]) -> None:
        self.rules = rules
        self.on_price = on_price
        # Clicks are caught on the panels, which never repaint: an element's listeners travel with every update of
        # it, and the repainted markup below changes up to 4 times a second on every page.
        with ui.column().classes("w-full gap-0 p-2 tw-panel text-xs font-mono").mark("book") as book:
            ui.label("Order book").classes("text-sm font-bold font-sans mb-1")
            _header(f"Price ({rules.quote})", f"Amount ({rules.base})", "Total")
            # Our own markup built from numbers only: nothing to sanitize, and DOMPurify would cost per tick.
            self.asks = _rows("Asks: Enter uses the best ask price", pick="last").mark("book-asks")
            self.spread = ui.label("—").classes("w-full text-center text-base font-bold py-1").mark("spread")
            self.bids = _rows("Bids: Enter uses the best bid price").mark("book-bids")
        with ui.column().classes("w-full gap-0 p-2 tw-panel text-xs font-mono").mark("recent-trades") as recent:
            ui.label("Recent trades").classes("text-sm font-bold font-sans mb-1")
            _header(f"Price ({rules.quote})", f"Amount ({rules.base})", "Time")
            self.trades = _rows("Recent trades: Enter uses the last trade price").mark("trades")
        for panel in (book, recent):
            panel.on("click", self._clicked, js_handler=_CLICK_JS)
            panel.on("keydown", self._clicked, js_handler=_KEY_JS)

    def _clicked(self, event: object) -> None:
        price = getattr(event, "args", None)
        if isinstance(price, str) and price:
            self.on_price(price)

    def update(self, depth: Depth | None, trades: list[Trade]) -> None:
        """Repaint both panels (called at most 4 times a second)."""
        painted = self._paint(depth, trades)
        if painted.asks is not None and painted.bids is not None:
            self.asks.set_content(painted.asks)
            self.bids.set_content(painted.bids)
        if painted.spread is not None:
            self.spread.set_text(painted.spread)
        self.trades.set_content(painted.trades_html)

    def _paint(self, depth: Depth | None, trades: list[Trade]) -> _Painted:
        """The markup for this market data: reused when another page of the symbol already built it."""
        symbol = self.rules.symbol
        last = _last_painted.get(symbol)
        if last is not None and last.depth is depth and last.trades is trades:
            return last
        asks_html = bids_html = spread_text = None
        if depth is not None:
            asks = depth.asks[:LEVELS]
            bids = depth.bids[:LEVELS]
            biggest = max((q for _, q in (*asks, *bids)), default=Decimal(1)) or Decimal(1)
            asks_html = self._side(tuple(reversed(asks)), biggest, DOWN_HEX, "tw-down")
            bids_html = self._side(bids, biggest, UP_HEX, "tw-up")
            if asks and bids:
                spread = asks[0][0] - bids[0][0]
                mid = (asks[0][0] + bids[0][0]) / 2
                pct = spread / mid * 100 if mid else Decimal(0)
                spread_text = f"Spread {on_step(spread, self.rules.tick_size)} ({pct:.3f}%)"
        trades_html = "".join(self._trade_row(t) for t in trades)
        painted = _Painted(depth, trades, asks_html, bids_html, spread_text, trades_html)
        _last_painted[symbol] = painted
        return painted

    def _side(self, levels: tuple[PriceLevel, ...], biggest: Decimal, color: str, text_class: str) -> str:
        tick, step = self.rules.tick_size, self.rules.step_size
        rows = []
        for price, qty in levels:
            width = int(qty / biggest * 100)
            shown = on_step(price, tick)
            rows.append(
                f'<div data-price="{price}" class="tw-row" title="Use {escape(shown)}" '
                f'style="background:linear-gradient(to left,{color}26 {width}%,transparent {width}%)">'
                f'<span class="{text_class}">{shown}</span><span>{on_step(qty, step)}</span>'
                f"<span>{on_step(price * qty, Decimal('0.01'))}</span></div>"
            )
        return "".join(rows)

    def _trade_row(self, trade: Trade) -> str:
        text_class = "tw-up" if trade.side == "BUY" else "tw-down"
        shown = on_step(trade.price, self.rules.tick_size)
        return (
            f'<div data-price="{trade.price}" class="tw-row"><span class="{text_class}">{shown}</span>'
            f"<span>{on_step(trade.qty, self.rules.step_size)}</span><span>{clock(trade.ts)}</span></div>"
        )


def _rows(name: str, pick: str = "first") -> ui.html:
    """One side's repainted rows; focusable as a whole (a stable element, unlike its rows)."""
    rows = ui.html("", sanitize=False).classes("w-full cursor-pointer")
    return rows.props(f'tabindex=0 role=button aria-label="{name}" data-pick={pick}')


def _header(*captions: str) -> None:
    ui.add_css(
        ".tw-row{display:grid;grid-template-columns:1fr 1fr 1fr;padding:1px 4px;line-height:1.35}"
        ".tw-row span:nth-child(n+2){text-align:right}.tw-row:hover{outline:1px solid rgba(132,142,156,.4)}"
    )
    with ui.element("div").classes("tw-row w-full opacity-60"):
        for caption in captions:
            ui.label(caption)
