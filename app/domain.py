"""Pure trading domain: enums, the order state machine, symbol rules and decimal helpers. No I/O."""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Self, cast

from app.errors import ValidationFailed


class StoredEnum(StrEnum):
    """A StrEnum whose members are looked up from stored text on the order path: `of` is a dict lookup, where
    calling the class (Enum's own lookup) costs ~10x more, several times per order."""

    @classmethod
    def of(cls, value: object) -> Self:  # `object`: raw input reaches it, and a compiled `str` would raise TypeError
        try:
            member = cls._value2member_map_.get(value)
        except TypeError:  # unhashable: not a member
            member = None
        return cast(Self, member) if member is not None else cls(cast(Any, value))  # not one: the class's ValueError


class Venue(StoredEnum):
    PAPER = "paper"
    BINANCE_TESTNET = "binance-testnet"


class Side(StoredEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StoredEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    # Post-only (Binance LIMIT_MAKER): rests as a maker or is refused; never takes liquidity, has no time in force.
    LIMIT_MAKER = "LIMIT_MAKER"
    # Trailing stop: waits, follows the best price since placement, fires a market order on a retrace of
    # `trailing_delta_bps` (Binance: STOP_LOSS with trailingDelta). No stop price.
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"

    @property
    def has_limit_price(self) -> bool:
        return self in _WITH_LIMIT_PRICE

    @property
    def takes_time_in_force(self) -> bool:
        """GTC/IOC/FOK apply (a post-only order is GTC by nature and takes none, as on Binance)."""
        return self in _WITH_TIME_IN_FORCE

    @property
    def is_triggered(self) -> bool:
        """Waits off the book for a trigger (stop price or trailing retrace)."""
        return self not in _ON_BOOK_AT_ONCE

    @property
    def has_stop_price(self) -> bool:
        return self.is_triggered and self is not OrderType.TRAILING_STOP_MARKET

    @property
    def is_trailing(self) -> bool:
        return self is OrderType.TRAILING_STOP_MARKET

    @property
    def is_stop(self) -> bool:
        return self in _STOPS


# The order types' properties above, as sets built once (a set literal in a property is rebuilt on every call, and
# these are asked several times per order on the hot path).
_WITH_LIMIT_PRICE = frozenset(
    {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
)
_WITH_TIME_IN_FORCE = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
_ON_BOOK_AT_ONCE = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.LIMIT_MAKER})
_STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})

TRAILING_DELTA_BPS = (10, 2000)  # Binance spot's TRAILING_DELTA filter range (basis points), used for paper too


class TimeInForce(StoredEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StoredEnum):
    PENDING = "PENDING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    REPLACED = "REPLACED"  # canceled by a modify/replace: its replacement carries `replaces` = this order's id

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.REPLACED}
)

# The one table of allowed transitions. A partial fill may repeat (PARTIALLY_FILLED -> PARTIALLY_FILLED).
# PENDING may jump straight to a fill state: a market order fills in the same venue call that accepts it.
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    # REPLACED only from a working order: a modify/replace cancels it at the venue and places its replacement.
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REPLACED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REPLACED,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
    OrderStatus.REPLACED: frozenset(),
}


class IllegalTransition(Exception):
    """A status change the state machine forbids; a bug or a stale venue report, never applied."""


def check_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Raise IllegalTransition unless `current -> new` is in the table."""
    if new not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(f"{current} -> {new} is not allowed")


# ---- decimals -------------------------------------------------------------------------------------------

# Money carries up to 38 significant digits (20 integer + 18 fractional); the default context (28) would round
# products such as price x quantity. Threads started later copy DefaultContext, so set both.
MONEY_PRECISION = 60
decimal.DefaultContext.prec = MONEY_PRECISION
decimal.getcontext().prec = MONEY_PRECISION

_WIDE = decimal.Context(prec=MONEY_PRECISION)
MAX_DECIMAL_PLACES = 18
MAX_MAGNITUDE = Decimal("1e20")


def parse_decimal(value: object, field: str) -> Decimal:
    """Turn a decimal string or JSON number into a finite Decimal, or raise ValidationFailed naming `field`.

    JSON numbers arrive as int/float; floats are converted through their shortest repr so "0.1" stays 0.1.
    """
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"{field} must be a decimal number", field=field)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationFailed(f"{field} must be a decimal number", field=field) from None
    if not number.is_finite():
        raise ValidationFailed(f"{field} must be a finite number", field=field)
    if abs(number) >= MAX_MAGNITUDE:
        raise ValidationFailed(f"{field} is too large", field=field)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise ValidationFailed(f"{field} has more than {MAX_DECIMAL_PLACES} decimal places", field=field)
    return number


# fmt's answers by value. Every order formats the same few prices and sizes several times (its events, its fill, the
# balances): a dict lookup is ~7x cheaper than normalising. Equal Decimals have one canonical form, so the key may be
# any of them; the cache is emptied when full (the values in play are few; a miss only costs the normalising).
_FORMATTED: dict[Decimal, str] = {}
_FORMATTED_MAX = 4096


def fmt(value: Decimal | None) -> str | None:
    """Canonical wire form: plain notation, no exponent, no trailing zeros ("0.01", "10000")."""
    if value is None:
        return None
    if value.__class__ is not Decimal:  # never from the cache: a float equals its Decimal and would find its text
        return _canonical(value)
    text = _FORMATTED.get(value)
    if text is None:
        text = _canonical(value)
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        _FORMATTED[value] = text
    return text


def _canonical(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(_WIDE), "f")


def on_grid(value: Decimal, step: Decimal) -> bool:
    """True when `value` is a whole multiple of `step` (a zero step means no grid)."""
    return step == 0 or value % step == 0


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round down onto the grid: the most one may buy or sell without breaking LOT_SIZE."""
    if step == 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """Nearest price on the tick grid (banker's rounding, so simulated prices carry no drift)."""
    if tick == 0:
        return value
    return (value / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """A symbol's trading filters (Binance PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal = Decimal("9000000")

    def check_price(self, price: Decimal, field: str = "price") -> None:
        if price <= 0:
            raise ValidationFailed(f"{field} must be greater than 0", field=field)
        if not on_grid(price, self.tick_size):
            raise ValidationFailed(f"{field} must be a multiple of the tick size {fmt(self.tick_size)}", field=field)

    def check_quantity(self, quantity: Decimal, field: str = "quantity") -> None:
        if quantity <= 0:
            raise ValidationFailed(f"{field} must be greater than 0", field=field)
        if not on_grid(quantity, self.step_size):
            raise ValidationFailed(f"{field} must be a multiple of the step size {fmt(self.step_size)}", field=field)
        if quantity < self.min_qty:
            raise ValidationFailed(f"{field} is below the minimum {fmt(self.min_qty)}", field=field)
        if quantity > self.max_qty:
            raise ValidationFailed(f"{field} is above the maximum {fmt(self.max_qty)}", field=field)

    def check_notional(self, notional: Decimal, field: str = "quantity") -> None:
        if notional < self.min_notional:
            raise ValidationFailed(
                f"order value {fmt(notional)} {self.quote} is below the minimum {fmt(self.min_notional)} {self.quote}",
                field=field,
            )


def check_trailing_delta(kind: OrderType, side: Side, raw: object) -> int | None:
    """A trailing stop's delta in basis points (required, a whole number in TRAILING_DELTA_BPS, SELL only), or
    None for the other types (which refuse one); raises ValidationFailed naming the field."""
    field = "trailing_delta_bps"
    if not kind.is_trailing:
        if raw is not None:
            raise ValidationFailed(f"{field} is not allowed for {kind} orders", field=field)
        return None
    if raw is None:
        raise ValidationFailed(f"{field} is required for {kind} orders", field=field)
    low, high = TRAILING_DELTA_BPS
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ValidationFailed(f"{field} must be a whole number of basis points from {low} to {high}", field=field)
    if side is not Side.SELL:
        # A trailing buy would need funds reserved at a price nobody knows yet; not offered.
        raise ValidationFailed(f"{kind} orders are SELL only (a trailing stop protects a position)", field="side")
    return raw


def normalize_symbol(raw: str) -> str:
    """`BTC/USDT`, `btcusdt` -> `BTCUSDT`."""
    return raw.replace("/", "").replace("-", "").strip().upper()
