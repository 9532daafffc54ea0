"""The money arithmetic of trading, pure (Decimal only, no I/O): what an order keeps locked, fees, and positions.

Conventions (Binance Spot): the fee is charged in the asset received (base on a BUY, quote on a SELL); a resting
BUY locks remaining_qty x limit (or stop) price of quote, a resting SELL locks its remaining base quantity; the two
legs of an OCO exit share one lock, held by the LIMIT (take-profit) leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from app.domain import OrderStatus, OrderType, Side, SymbolRules
from app.immutable import immutable

# Cost basis and PnL are kept to 18 decimal places on both databases (NUMERIC(38, 18)).
PNL_PLACES = Decimal("1e-18")
ZERO = Decimal(0)


@immutable
class Requirement:
    """Funds an order needs now: `amount` of `asset`."""

    asset: str
    amount: Decimal


class OrderTerms(Protocol):
    """The fields of an order that decide what it locks."""

    @property
    def side(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def quantity(self) -> Decimal | None: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def stop_price(self) -> Decimal | None: ...
    @property
    def oco_group(self) -> str | None: ...


def reservation(order: OrderTerms, rules: SymbolRules, status: OrderStatus, filled: Decimal) -> Requirement:
    """What an order should keep locked in `status` with `filled` already executed (nothing once terminal)."""
    side, kind = Side(order.side), OrderType(order.type)
    asset = rules.quote if side is Side.BUY else rules.base
    if status.is_terminal or kind is OrderType.MARKET:
        return Requirement(asset, ZERO)
    if order.oco_group is not None and kind is not OrderType.LIMIT:
        return Requirement(asset, ZERO)  # shares the LIMIT leg's lock
    left = (order.quantity or ZERO) - filled
    if side is Side.SELL:
        return Requirement(asset, left)
    price = order.price if kind.has_limit_price else order.stop_price
    assert price is not None
    return Requirement(asset, left * price)


def fee_for(side: Side, price: Decimal, quantity: Decimal, rate: Decimal, rules: SymbolRules) -> tuple[Decimal, str]:
    """The commission and its asset: the asset received."""
    if side is Side.BUY:
        return quantity * rate, rules.base
    return price * quantity * rate, rules.quote


@dataclass(slots=True)
class PositionState:
    """Average-cost spot position of one account in one symbol."""

    account_id: str
    symbol: str
    quantity: Decimal = ZERO
    cost: Decimal = ZERO  # total cost of the quantity held, fees included; avg entry = cost / quantity
    realized_pnl: Decimal = ZERO


class PositionLike(Protocol):
    quantity: Decimal
    cost: Decimal
    realized_pnl: Decimal


def update_position(
    position: PositionLike,
    side: str,
    price: Decimal,
    quantity: Decimal,
    fee: Decimal,
    fee_asset: str,
    rules: SymbolRules,
) -> None:
    """Average-cost position: buys add cost (a base fee shrinks the quantity, a quote fee adds to the cost, so fees
    are in the cost); sells realise PnL on the part covered by the position, net of a quote fee. Fees paid in a
    third asset (BNB on Binance) are not converted and stay out of the cost basis."""
    base_fee = fee if fee_asset == rules.base else ZERO
    quote_fee = fee if fee_asset == rules.quote else ZERO
    if side == Side.BUY:
        position.quantity += quantity - base_fee
        position.cost += price * quantity + quote_fee
        return
    covered = min(quantity, position.quantity)
    if covered <= 0:
        return  # selling assets that came with the account, not bought here: no cost basis, no PnL
    cost_of_sold = (position.cost * covered / position.quantity).quantize(PNL_PLACES, rounding=ROUND_HALF_EVEN)
    proceeds = price * covered - quote_fee * covered / quantity
    position.realized_pnl += (proceeds - cost_of_sold).quantize(PNL_PLACES, rounding=ROUND_HALF_EVEN)
    position.quantity -= covered
    position.cost -= cost_of_sold
    if position.quantity == 0:
        position.cost = ZERO


def average_entry(position: PositionLike) -> Decimal | None:
    if position.quantity <= 0:
        return None
    return (position.cost / position.quantity).quantize(PNL_PLACES, rounding=ROUND_HALF_EVEN)


def unrealized(position: PositionLike, market_price: Decimal | None) -> Decimal | None:
    if market_price is None:
        return None
    return position.quantity * market_price - position.cost
