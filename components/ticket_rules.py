"""The order ticket's arithmetic and validation, without UI: what the fields mean as an `OrderRequest`.

Validation uses the same functions as the service (`parse_decimal`, `SymbolRules.check_*`) in the same order as
`OrderService._build`, so a person sees the API's exact message before submitting; the service still validates
again on submit (the authority).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.domain import OrderType, Side, SymbolRules, check_trailing_delta, floor_to_step, parse_decimal
from app.errors import ValidationFailed
from app.orders import OrderRequest, OrderService

ORDER_TYPES: dict[str, OrderType] = {
    "Market": OrderType.MARKET,
    "Limit": OrderType.LIMIT,
    "Post-only limit": OrderType.LIMIT_MAKER,
    "Stop-market": OrderType.STOP_MARKET,
    "Stop-limit": OrderType.STOP_LIMIT,
    "Take-profit market": OrderType.TAKE_PROFIT_MARKET,
    "Take-profit limit": OrderType.TAKE_PROFIT_LIMIT,
    "Trailing stop": OrderType.TRAILING_STOP_MARKET,
}


@dataclass(frozen=True, slots=True)
class TicketInput:
    """The ticket's fields as typed (strings; blank means "not given")."""

    side: Side
    type: OrderType
    quantity: str = ""
    total: str = ""
    by_total: bool = False  # the person typed the total (quote amount) rather than the quantity
    price: str = ""
    stop_price: str = ""
    time_in_force: str = "GTC"
    bracket: bool = False
    take_profit: str = ""
    stop_loss: str = ""
    trailing_delta: str = ""  # basis points, as typed


@dataclass(frozen=True, slots=True)
class Estimate:
    quantity: Decimal | None
    notional: Decimal | None  # quote amount the order is worth at its reference price
    fee: Decimal | None  # in the quote asset, at the maker or taker rate


def blank(text: str | None) -> str | None:
    """None for an empty field (the API's "missing"), else the stripped text."""
    return text.strip() if text and text.strip() else None


def reference_price(ticket: TicketInput, last: Decimal | None) -> Decimal | None:
    """The price the order is valued at: its limit price, else its trigger, else the last trade."""
    for raw, field in ((ticket.price, "price"), (ticket.stop_price, "stop_price")):
        value = blank(raw)
        if value is not None and _applies(ticket.type, field):
            try:
                number = parse_decimal(value, field)
            except ValidationFailed:
                return last
            if number > 0:
                return number
    return last


def to_request(ticket: TicketInput, rules: SymbolRules, last: Decimal | None) -> OrderRequest:
    """The request the ticket describes; raises ValidationFailed with the API's message for the first problem."""
    kind = ticket.type
    quantity: str | None = blank(ticket.quantity)
    quote_quantity: str | None = None
    if ticket.by_total and blank(ticket.total) is not None:
        total = parse_decimal(blank(ticket.total), "quote_quantity")
        if kind is OrderType.MARKET:
            quantity, quote_quantity = None, str(total)
        else:
            ref = reference_price(ticket, last if kind.is_trailing else None)  # a trailing stop has no price
            if ref is None:
                raise ValidationFailed(f"{_price_field(kind)} is required for {kind} orders", field=_price_field(kind))
            quantity = str(floor_to_step(total / ref, rules.step_size))
    request = OrderRequest(
        symbol=rules.symbol,
        side=ticket.side.value,
        type=kind.value,
        quantity=quantity,
        quote_quantity=quote_quantity,
        price=blank(ticket.price) if kind.has_limit_price else None,
        stop_price=blank(ticket.stop_price) if kind.has_stop_price else None,
        time_in_force=ticket.time_in_force if kind.takes_time_in_force else None,
        take_profit_price=blank(ticket.take_profit) if ticket.bracket else None,
        stop_loss_price=blank(ticket.stop_loss) if ticket.bracket else None,
        trailing_delta_bps=whole_bps(ticket.trailing_delta) if kind.is_trailing else None,
    )
    check(request, kind, rules, last)
    return request


def check(request: OrderRequest, kind: OrderType, rules: SymbolRules, last: Decimal | None) -> None:
    """The synchronous checks of `OrderService._build`, in its order, with its messages: the service's own
    field validators are reused so the ticket can never drift from the API."""
    quantity, quote_quantity = OrderService._sizes(kind, request, rules)
    price = OrderService._price(kind, request.price, rules, "price", required=kind.has_limit_price)
    stop_price = OrderService._price(kind, request.stop_price, rules, "stop_price", required=kind.has_stop_price)
    reference = price or stop_price or last
    if quantity is not None and reference is not None:
        rules.check_notional(quantity * reference)
    if quote_quantity is not None:
        rules.check_notional(quote_quantity, field="quote_quantity")
    OrderService._bracket(Side(request.side), request, rules, reference)
    check_trailing_delta(kind, Side(request.side), request.trailing_delta_bps)


def estimate(
    ticket: TicketInput, rules: SymbolRules, last: Decimal | None, maker_fee: Decimal, taker_fee: Decimal
) -> Estimate:
    """Quantity, value and fee the ticket would trade, as far as the fields allow (None where unknown)."""
    ref = reference_price(ticket, last)
    rate = maker_fee if ticket.type.has_limit_price else taker_fee
    quantity: Decimal | None
    notional: Decimal | None
    try:
        if ticket.by_total and blank(ticket.total) is not None:
            notional = parse_decimal(blank(ticket.total), "total")
            quantity = floor_to_step(notional / ref, rules.step_size) if ref else None
        elif blank(ticket.quantity) is not None:
            quantity = parse_decimal(blank(ticket.quantity), "quantity")
            notional = quantity * ref if ref is not None else None
        else:
            return Estimate(None, None, None)
    except (ValidationFailed, ArithmeticError):
        return Estimate(None, None, None)
    return Estimate(quantity, notional, notional * rate if notional is not None else None)


def max_quantity(side: Side, free_base: Decimal, free_quote: Decimal, price: Decimal | None, fee: Decimal) -> Decimal:
    """The most the balance allows: all the base for a sell, quote / (price x (1 + fee)) for a buy."""
    if side is Side.SELL:
        return free_base
    if not price:
        return Decimal(0)
    return free_quote / (price * (1 + fee))


def whole_bps(text: str | None) -> int | str | None:
    """Typed basis points as the API takes them: an int, else the text (the service's check names the problem)."""
    value = blank(text)
    return int(value) if value is not None and value.isascii() and value.isdigit() else value


def _applies(kind: OrderType, field: str) -> bool:
    return kind.has_limit_price if field == "price" else kind.has_stop_price


def _price_field(kind: OrderType) -> str:
    return "price" if kind.has_limit_price else "stop_price"
