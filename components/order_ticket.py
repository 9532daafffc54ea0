"""The order ticket: side, type, price/stop (shown by type), amount or total, % of balance, TIF, TP/SL bracket,
available balance, estimated value and fee, inline validation with the API's messages, and a submit that can
never place two orders for one submission (one client order id per submission, button disabled meanwhile)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from nicegui import ui

from app.domain import Side, SymbolRules, floor_to_step, fmt
from app.errors import TradewindError
from components import session
from components.formatting import on_step
from components.ticket_rules import ORDER_TYPES, TicketInput, estimate, max_quantity, reference_price, to_request

if TYPE_CHECKING:
    from app.services import Services


class OrderTicket:
    """One ticket per trade page. `balances` is the page's live {asset: (free, locked)} map."""

    def __init__(
        self,
        services: Services,
        user_id: str,
        account_id: str,
        rules: SymbolRules,
        balances: Mapping[str, tuple[Decimal, Decimal]],
        last_price: Callable[[], Decimal | None],
        on_placed: Callable[[dict[str, Any]], None],
    ) -> None:
        self.services, self.user_id, self.account_id, self.rules = services, user_id, account_id, rules
        self.balances, self.last_price, self.on_placed = balances, last_price, on_placed
        self.side = Side.BUY
        self.by_total = False
        self._syncing = False  # set while we write one size field from the other, to not loop
        self._submitting = False
        self._client_order_id: str | None = None  # one per submission, reused if that submission is retried
        maker, taker = services.settings.paper_maker_fee, services.settings.paper_taker_fee
        self.fees = (maker, taker)
        base, quote = rules.base, rules.quote
        with ui.column().classes("w-full gap-2 p-3 tw-panel").mark("ticket"):
            with ui.row().classes("w-full no-wrap gap-1"):
                self.buy = ui.button("Buy", on_click=lambda: self.set_side(Side.BUY)).mark("side-buy")
                self.sell = ui.button("Sell", on_click=lambda: self.set_side(Side.SELL)).mark("side-sell")
                for button in (self.buy, self.sell):
                    button.classes("grow").props("unelevated no-caps")
            self.type = ui.select(list(ORDER_TYPES), value="Limit", label="Order type", on_change=self.refresh)
            self.type.props("dense outlined options-dense").classes("w-full").mark("ticket-type")
            self.stop = self._input(f"Stop price ({quote})", "ticket-stop")
            self.trail = self._input("Trail (basis points, 100 = 1 %)", "ticket-trail")
            self.trail.props("inputmode=numeric")
            self.price = self._input(f"Price ({quote})", "ticket-price")
            self.quantity = self._input(f"Amount ({base})", "ticket-quantity", self._on_quantity)
            self.total = self._input(f"Total ({quote})", "ticket-total", self._on_total)
            self.percent = ui.slider(min=0, max=100, step=5, value=0, on_change=self._on_percent)
            self.percent.props('label markers snap dense aria-label="Percent of available balance"')
            self.percent.mark("ticket-percent")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                self.tif = ui.select(["GTC", "IOC", "FOK"], value="GTC", label="TIF").props("dense outlined")
                self.tif.classes("w-24").mark("ticket-tif")
                self.bracket = ui.checkbox("TP/SL", on_change=self.refresh).mark("ticket-bracket")
            with ui.row().classes("w-full no-wrap gap-2") as self.bracket_row:
                self.take_profit = self._input("Take profit", "ticket-tp")
                self.stop_loss = self._input("Stop loss", "ticket-sl")
            self.available = ui.label().classes("text-xs opacity-70").mark("available")
            self.cost = ui.label().classes("text-xs opacity-70").mark("estimate")
            self.error = ui.label().classes("text-negative text-sm").mark("ticket-error")
            self.submit_button = ui.button(on_click=self.submit).classes("w-full").props("unelevated no-caps")
            self.submit_button.props("data-testid=submit-order").mark("submit-order")
        last = last_price()
        if last is not None:
            self.price.set_value(fmt(last))
        self.set_side(Side.BUY)

    def _input(self, label: str, mark: str, on_change: Callable[[], None] | None = None) -> ui.input:
        field = ui.input(label, on_change=on_change or self.refresh).props("dense outlined inputmode=decimal")
        return field.classes("w-full font-mono").mark(mark)

    # ---- field behaviour ----------------------------------------------------------------------------------

    def ticket(self) -> TicketInput:
        """The fields as typed."""
        return TicketInput(
            side=self.side,
            type=ORDER_TYPES[self.type.value],
            quantity=self.quantity.value or "",
            total=self.total.value or "",
            by_total=self.by_total,
            price=self.price.value or "",
            stop_price=self.stop.value or "",
            time_in_force=self.tif.value,
            bracket=bool(self.bracket.value),
            take_profit=self.take_profit.value or "",
            stop_loss=self.stop_loss.value or "",
            trailing_delta=self.trail.value or "",
        )

    def set_side(self, side: Side) -> None:
        """Buy or sell (shortcut B / S)."""
        self.side = side
        self.buy.props(f"color={'positive' if side is Side.BUY else 'grey-8'}")
        self.sell.props(f"color={'negative' if side is Side.SELL else 'grey-8'}")
        self.submit_button.props(f"color={'positive' if side is Side.BUY else 'negative'}")
        self.submit_button.set_text(f"{'Buy' if side is Side.BUY else 'Sell'} {self.rules.base}")
        self.refresh()

    def set_price(self, price: str) -> None:
        """A clicked order-book level: into the price field (or the stop field of a stop-market order)."""
        kind = ORDER_TYPES[self.type.value]
        (self.price if kind.has_limit_price or not kind.has_stop_price else self.stop).set_value(price)
        if not kind.has_limit_price and not kind.is_triggered:
            self.type.set_value("Limit")

    def clear(self) -> None:
        """Empty the size and bracket fields (shortcut Esc)."""
        self._syncing = True
        for field in (self.quantity, self.total, self.take_profit, self.stop_loss):
            field.set_value("")
        self.percent.set_value(0)
        self._syncing = False
        self.by_total = False
        self.error.set_text("")
        self.refresh()

    def focus_quantity(self) -> None:
        self.quantity.run_method("focus")

    def _on_quantity(self) -> None:
        if not self._syncing:
            self.by_total = False
            self._sync(self.total, self.ticket(), lambda e: on_step(e.notional, Decimal("0.01")).replace(",", ""))

    def _on_total(self) -> None:
        if not self._syncing:
            self.by_total = True
            self._sync(self.quantity, self.ticket(), lambda e: fmt(e.quantity) or "")

    def _sync(self, target: ui.input, ticket: TicketInput, text: Callable[[Any], str]) -> None:
        shown = estimate(ticket, self.rules, self.last_price(), *self.fees)
        self._syncing = True
        target.set_value(text(shown) if shown.quantity is not None and shown.notional is not None else "")
        self._syncing = False
        self.refresh()

    def _on_percent(self) -> None:
        if self._syncing:
            return
        base, quote = self._free(self.rules.base), self._free(self.rules.quote)
        ref = reference_price(self.ticket(), self.last_price())
        most = max_quantity(self.side, base, quote, ref, self.fees[1])
        amount = floor_to_step(most * Decimal(int(self.percent.value)) / 100, self.rules.step_size)
        self.quantity.set_value(fmt(amount) if amount > 0 else "")

    def _free(self, asset: str) -> Decimal:
        return self.balances.get(asset, (Decimal(0), Decimal(0)))[0]

    def refresh(self) -> None:
        """Show the fields the type needs; repaint available balance, estimate and the first validation error."""
        kind = ORDER_TYPES[self.type.value]
        self.price.set_visibility(kind.has_limit_price)
        self.stop.set_visibility(kind.has_stop_price)
        self.trail.set_visibility(kind.is_trailing)
        self.tif.set_visibility(kind.takes_time_in_force)
        self.bracket_row.set_visibility(bool(self.bracket.value))
        asset = self.rules.quote if self.side is Side.BUY else self.rules.base
        step = Decimal("0.01") if asset == self.rules.quote else self.rules.step_size
        self.available.set_text(f"Available {on_step(self._free(asset), step)} {asset}")
        ticket = self.ticket()
        shown = estimate(ticket, self.rules, self.last_price(), *self.fees)
        rate = self.fees[0] if kind.has_limit_price else self.fees[1]
        value = on_step(shown.notional, Decimal("0.01"))
        fee = on_step(shown.fee, Decimal("0.0001"))
        self.cost.set_text(f"Est. value {value} {self.rules.quote} · fee ≈ {fee} {self.rules.quote} ({rate * 100}%)")
        if ticket.quantity or ticket.total:
            try:
                to_request(ticket, self.rules, self.last_price())
                self.error.set_text("")
            except TradewindError as exc:
                self.error.set_text(exc.message)

    # ---- submit -------------------------------------------------------------------------------------------

    async def submit(self) -> None:
        """Validate, then hand the order to the service (returns at once: the order is PENDING)."""
        if self._submitting:  # a second click that arrived before the button was disabled
            return
        self._submitting = True
        self.submit_button.disable()
        try:
            user = await session.current_user(self.services)
            if user is None or user.id != self.user_id:
                ui.notify("Your session has ended; log in again.", type="warning")
                ui.navigate.to("/login")
                return
            try:
                request = to_request(self.ticket(), self.rules, self.last_price())
            except TradewindError as exc:
                self.error.set_text(exc.message)
                self._client_order_id = None
                return
            self._client_order_id = self._client_order_id or uuid4().hex[:32]
            request = replace(request, account_id=self.account_id, client_order_id=self._client_order_id)
            try:
                placed = await self.services.orders.submit(user.id, request)
            except TradewindError as exc:  # a definite refusal: nothing stored, the next submission is new
                self.error.set_text(exc.message)
                self._client_order_id = None
                return
            self._client_order_id = None
            order = placed.order
            self.error.set_text("")
            size = order["quantity"] or f"{order['quote_quantity']} {self.rules.quote} of"
            ui.notify(f"Order placed: {order['side']} {size} {order['symbol']} ({order['status']})", type="info")
            self.on_placed(order)
        finally:
            self._submitting = False
            self.submit_button.enable()
