"""The trading screen behind /trade/{symbol}: price header, chart, order book, ticket, alerts and blotter tabs.

Live data reaches it only through `components/live.py`: the market callback and the user-event batch callback
below are synchronous and cheap, subscribed once in the page function and removed with the client. The user id is
read once in the page; callbacks fired by background work never touch `app.storage.user`.

Switching the symbol rebuilds only the symbol's panels in place and pushes the new URL to the browser history (no
page load; the subscriptions and the blotter stay). The browser's back/forward buttons switch the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nicegui import background_tasks, ui
from nicegui.events import GenericEventArguments

from app.domain import OrderStatus, Side, fmt, normalize_symbol
from app.errors import TradewindError
from app.events import UserEvent
from app.replacements import ReplaceRequest
from components import notices, session, shortcuts
from components.alerts import AlertPanel
from components.blotter import Blotter
from components.chart import CandleChart
from components.confirm import confirm
from components.kill_switch import KillSwitch
from components.live import ALERT_EVENT, SESSION_ENDED, LiveFeed, SymbolUpdate
from components.order_book import OrderBook
from components.order_ticket import OrderTicket
from components.price_header import PriceHeader
from components.statement_downloads import StatementDownloads

if TYPE_CHECKING:
    from app.services import Services

# Back/forward between symbols of this page: tell the server which symbol the URL now names.
_POPSTATE_JS = """<script>
window.addEventListener('popstate', () => {
  const m = location.pathname.match(/^\\/trade\\/([^/]+)$/);
  if (m) emitEvent('tw_symbol', decodeURIComponent(m[1]));
});
</script>"""


def subscribe_page(
    live: LiveFeed,
    user_id: str,
    on_market: Callable[[dict[str, SymbolUpdate]], None],
    on_events: Callable[[list[UserEvent]], None],
) -> None:
    """The page's live subscriptions (shared market tick, the user's event inbox); both end with the client."""
    live.market.subscribe(on_market)
    live.watch_user(user_id, on_events)


class TradeScreen:
    """One page's widgets and the glue between them, the services and the live feed."""

    def __init__(self, services: Services, live: LiveFeed, user_id: str, account_id: str, symbol: str) -> None:
        self.services, self.live = services, live
        self.user_id, self.account_id, self.symbol = user_id, account_id, symbol
        self.rules = services.rules[symbol]
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.open_orders: dict[str, dict[str, Any]] = {}
        self.recent_fills: list[dict[str, Any]] = []
        self._connected_once = False

    def trading_state(self) -> str:
        return self.services.trading.states.state(self.account_id).value

    def last_price(self) -> Decimal | None:
        ticker = self.services.market.ticker(self.symbol)
        return ticker.price if ticker else None

    async def build(self) -> None:
        self.help_dialog = shortcuts.install(
            {
                "b": lambda: self.ticket.set_side(Side.BUY),
                "s": lambda: self.ticket.set_side(Side.SELL),
                "f": lambda: self.ticket.focus_quantity(),
                "escape": lambda: self.ticket.clear(),
            }
        )
        with ui.row().classes("w-full justify-end items-center gap-2"):
            self.kill_switch = KillSwitch(
                self.services, self.user_id, self.account_id, self.trading_state(), self._user_ok
            )
        self.panels = ui.column().classes("w-full gap-2 p-0")
        with self.panels:
            await self._build_panels()
        downloads = StatementDownloads(self.services, self.user_id, self.account_id, self._user_ok)
        self.blotter = Blotter(
            self.services.rules,
            self._cancel,
            self._cancel_all,
            self._modify,
            symbol=self.symbol,
            on_cancel_symbol=self._cancel_symbol,
            on_close=self._close_position,
            extra_actions=downloads.menu,
        )
        await self.reload()
        subscribe_page(self.live, self.user_id, self._on_market, self._on_events)  # last: the page has its data
        ui.context.client.on_connect(self._on_connect)
        ui.add_body_html(_POPSTATE_JS)
        ui.on("tw_symbol", self._on_popstate)

    async def _build_panels(self) -> None:
        """Everything that belongs to the current symbol (rebuilt on a symbol switch)."""
        services = self.services
        snapshot = self.live.snapshot(self.symbol)
        alerts = await services.alerts.list(self.user_id)
        self.header = PriceHeader(services.market.symbols, self.rules, snapshot.ticker, self.switch_symbol)
        with ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-12 gap-2"):
            with ui.element("div").classes("lg:col-span-6 min-w-0 flex flex-col"):
                self.chart = CandleChart(services.market, self.rules)
            with ui.element("div").classes("lg:col-span-3 order-3 lg:order-2 min-w-0 flex flex-col gap-2"):
                self.book = OrderBook(self.rules, self._use_price)
            with ui.element("div").classes("lg:col-span-3 order-2 lg:order-3 min-w-0 flex flex-col gap-2"):
                self.ticket = OrderTicket(
                    services, self.user_id, self.account_id, self.rules, self.balances, self.last_price, self._placed
                )
                self.alerts = AlertPanel(services, self.user_id, self.rules, self.last_price, alerts)
                help_button = ui.button("Keyboard shortcuts", icon="keyboard", on_click=self.help_dialog.open)
                help_button.props("flat dense no-caps size=sm").classes("self-start opacity-70").mark("shortcuts")
        self.book.update(snapshot.depth, snapshot.trades)

    async def switch_symbol(self, symbol: str, *, push: bool = True) -> None:
        """Show another symbol without a page load; the URL follows (pushed unless we came from back/forward)."""
        wanted = normalize_symbol(symbol)
        if wanted == self.symbol or wanted not in self.services.rules:
            return
        self.symbol, self.rules = wanted, self.services.rules[wanted]
        self.blotter.set_symbol(wanted)
        self.panels.clear()  # deletes the switcher this call may come from: work in the panels' context below
        with self.panels:
            await self._build_panels()
            self.ticket.refresh()
            self.chart.set_overlays(self.recent_fills, self.open_orders.values())
            ui.page_title(f"{wanted} · Tradewind")
            if push:
                ui.navigate.history.push(f"/trade/{wanted}")

    async def _on_popstate(self, event: GenericEventArguments) -> None:
        if isinstance(event.args, str) and await self._user_ok():
            await self.switch_symbol(event.args, push=False)

    # ---- data ---------------------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Re-query everything the blotter shows (page open, reconnect, cancel-all)."""
        orders = self.services.orders
        open_, closed, fills, balances, positions = await asyncio.gather(
            orders.list_orders(self.user_id, status="open", account_id=self.account_id, limit=200),
            orders.list_orders(self.user_id, status="closed", account_id=self.account_id, limit=100),
            orders.fills(self.user_id, account_id=self.account_id, limit=100),
            self.services.portfolio.balances(self.user_id, self.account_id),
            self.services.portfolio.positions(self.user_id, self.account_id),
        )
        balance_rows = [{"asset": b.asset, "free": fmt(b.free), "locked": fmt(b.locked)} for b in balances]
        self.blotter.load([*open_, *closed], fills, balance_rows)
        self.blotter.set_positions(positions)
        self._set_balances(balance_rows)
        self.open_orders = {o["id"]: o for o in open_}
        self.recent_fills = fills
        self.chart.set_overlays(self.recent_fills, self.open_orders.values())

    async def _refresh_positions(self) -> None:
        self.blotter.set_positions(await self.services.portfolio.positions(self.user_id, self.account_id))

    def _set_balances(self, rows: list[dict[str, Any]]) -> None:
        self.balances.clear()
        self.balances.update({r["asset"]: (Decimal(r["free"]), Decimal(r["locked"])) for r in rows})
        self.ticket.refresh()

    async def _on_connect(self) -> None:
        if self._connected_once:  # a reconnect: events may have been missed while away (or the session ended)
            if not await self._user_ok():
                return
            await self.reload()
        self._connected_once = True

    # ---- live callbacks (synchronous, cheap) --------------------------------------------------------------

    def _on_market(self, updates: dict[str, SymbolUpdate]) -> None:
        for name, update in updates.items():
            if update.ticker is not None:
                self.blotter.mark_price(name, update.ticker.price)
        mine = updates.get(self.symbol)
        if mine is None:
            return
        if mine.ticker is not None:
            self.header.update(mine.ticker)
        self.book.update(mine.depth, mine.trades)
        self.chart.push(mine.candles.get(self.chart.interval, []))

    def _on_events(self, batch: list[UserEvent]) -> None:
        overlays = fills = False
        for event in batch:
            data = event.data
            if event.type == SESSION_ENDED:
                ui.navigate.to("/login")
                return
            if event.type == ALERT_EVENT:
                self.alerts.fired(data)
                notices.alert_notice(data)
                continue
            if data.get("account_id") != self.account_id:
                continue  # another of the user's accounts
            if event.type == "TRADING_STATE":
                self.kill_switch.show(data["state"])
            elif event.type == "ORDER_UPDATE":
                self.blotter.order(data)
                self._track(data)
                notices.order_notice(data, self.services.rules)
                overlays = True
            elif event.type == "FILL":
                self.blotter.fill(data)
                self.recent_fills.insert(0, data)
                overlays = fills = True
            elif event.type == "BALANCE_UPDATE":
                self.blotter.set_balances(data["balances"])
                self._set_balances(data["balances"])
        if overlays:
            self.chart.set_overlays(self.recent_fills[:200], self.open_orders.values())
        if fills:  # positions carry PnL that no event holds: one query per batch with fills
            background_tasks.create(self._refresh_positions(), name="refresh positions")

    def _track(self, order: dict[str, Any]) -> None:
        if OrderStatus(order["status"]).is_terminal:
            self.open_orders.pop(order["id"], None)
        else:
            self.open_orders[order["id"]] = order

    # ---- actions (re-check the session user every time) -----------------------------------------------------

    def _placed(self, order: dict[str, Any]) -> None:
        self.blotter.order(order)  # shows as PENDING at once; the events move it on
        self._track(order)

    def _use_price(self, price: str) -> None:
        self.ticket.set_price(price)

    async def _user_ok(self) -> bool:
        user = await session.current_user(self.services)
        if user is None or user.id != self.user_id:
            ui.notify("Your session has ended; log in again.", type="warning")
            ui.navigate.to("/login")
            return False
        return True

    async def _cancel(self, order_id: str) -> None:
        if not await self._user_ok():
            return
        try:
            order = await self.services.orders.cancel(self.user_id, order_id)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        ui.notify(f"Cancel requested: {order['side']} {order['quantity']} {order['symbol']}", type="info")

    async def _modify(self, order_id: str, change: ReplaceRequest) -> bool:
        if not await self._user_ok():
            return False
        try:
            order = await self.services.orders.replace(self.user_id, order_id, change)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return False
        new = order.order
        ui.notify(f"Modify requested: {new['side']} {new['quantity']} {new['symbol']}", type="info")
        return True

    async def _cancel_all(self) -> None:
        if not await self._user_ok():
            return
        count = await self.services.orders.cancel_all(self.user_id, self.account_id, None)
        ui.notify(f"Canceling {count} open order{'s' if count != 1 else ''}", type="info")
        await self.reload()

    async def _cancel_symbol(self) -> None:
        symbol = self.symbol
        if not await self._user_ok():
            return
        count = await self.services.orders.cancel_all(self.user_id, self.account_id, symbol)
        ui.notify(f"Canceling {count} open {symbol} order{'s' if count != 1 else ''}", type="info")
        await self.reload()

    async def _close_position(self, symbol: str) -> None:
        if not await confirm(f"Sell your whole {symbol} position at market?", f"Close {symbol}"):
            return
        if not await self._user_ok():
            return
        try:
            submitted = await self.services.closer.close(self.user_id, symbol, self.account_id)
        except TradewindError as exc:
            ui.notify(exc.message, type="negative")
            return
        order = submitted.order
        self._placed(order)
        ui.notify(f"Closing: SELL {order['quantity']} {symbol} at market", type="info")
