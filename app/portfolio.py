"""Balances, locks, fees and positions of paper accounts — the ledger that moves money on fills.

Every function here runs inside the caller's transaction, so a fill, its fee, the balance change, the lock
release and the position update commit together or not at all.

Conventions (Binance Spot): the fee is charged in the asset received (base on a BUY, quote on a SELL); a resting
BUY locks remaining_qty x limit price of quote, a resting SELL locks its remaining base quantity; the two legs of an
OCO exit share one lock, held by the LIMIT (take-profit) leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from sqlmodel import Session

from app.domain import OrderStatus, OrderType, Side, SymbolRules
from storage.models import Fill, Order, Position
from storage.repositories import accounts, orders

# Cost basis and PnL are kept to 18 decimal places on both databases (NUMERIC(38, 18)).
PNL_PLACES = Decimal("1e-18")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Requirement:
    """Funds an order needs now: `amount` of `asset`."""

    asset: str
    amount: Decimal


def remaining(order: Order) -> Decimal:
    return (order.quantity or ZERO) - order.filled_quantity


def reservation(order: Order, rules: SymbolRules) -> Requirement:
    """What an order should keep locked in its current state (nothing once terminal)."""
    side, kind = Side(order.side), OrderType(order.type)
    if OrderStatus(order.status).is_terminal or kind is OrderType.MARKET:
        return Requirement(rules.quote if side is Side.BUY else rules.base, ZERO)
    if order.oco_group is not None and kind is not OrderType.LIMIT:
        return Requirement(rules.base if side is Side.SELL else rules.quote, ZERO)  # shares the LIMIT leg's lock
    if side is Side.SELL:
        return Requirement(rules.base, remaining(order))
    price = order.price if kind.has_limit_price else order.stop_price
    assert price is not None
    return Requirement(rules.quote, remaining(order) * price)


def fee_rate(liquidity: str, maker_fee: Decimal, taker_fee: Decimal) -> Decimal:
    return maker_fee if liquidity == "MAKER" else taker_fee


def fee_for(side: Side, price: Decimal, quantity: Decimal, rate: Decimal, rules: SymbolRules) -> tuple[Decimal, str]:
    """The commission and its asset: the asset received."""
    if side is Side.BUY:
        return quantity * rate, rules.base
    return price * quantity * rate, rules.quote


def release_lock(session: Session, order: Order) -> None:
    """Give the order's locked funds back to `free`."""
    if order.locked_asset and order.locked_amount:
        balance = accounts.balance_for_update(session, order.account_id, order.locked_asset)
        balance.locked -= order.locked_amount
        balance.free += order.locked_amount
        session.add(balance)
    order.locked_amount = ZERO


def take_lock(session: Session, order: Order, need: Requirement) -> bool:
    """Lock `need` from free; False (and nothing changes) when free is short."""
    order.locked_asset = need.asset
    if need.amount == 0:
        order.locked_amount = ZERO
        return True
    balance = accounts.balance_for_update(session, order.account_id, need.asset)
    if balance.free < need.amount:
        return False
    balance.free -= need.amount
    balance.locked += need.amount
    order.locked_amount = need.amount
    session.add(balance)
    return True


def free_balance(session: Session, account_id: str, asset: str) -> Decimal:
    return accounts.balance_for_update(session, account_id, asset).free


def apply_fill(session: Session, order: Order, fill: Fill, rules: SymbolRules, *, move_balances: bool = True) -> None:
    """Account for one fill: the order's totals, the position, and (paper only: the exchange owns testnet balances)
    the balances — the order's lock was already released."""
    if move_balances:
        base = accounts.balance_for_update(session, order.account_id, rules.base)
        quote = accounts.balance_for_update(session, order.account_id, rules.quote)
        if Side(fill.side) is Side.BUY:
            quote.free -= fill.price * fill.quantity
            base.free += fill.quantity - (fill.fee if fill.fee_asset == rules.base else 0)
        else:
            base.free -= fill.quantity
            quote.free += fill.price * fill.quantity - (fill.fee if fill.fee_asset == rules.quote else 0)
        session.add(base)
        session.add(quote)
    notional = fill.price * fill.quantity
    order.filled_quantity += fill.quantity
    order.filled_quote += notional
    order.fee += fill.fee
    order.fee_asset = fill.fee_asset
    update_position(orders.position_for_update(session, order.account_id, order.symbol), fill, rules)


def update_position(position: Position, fill: Fill, rules: SymbolRules) -> None:
    """Average-cost position: buys add cost (a base fee shrinks the quantity, a quote fee adds to the cost, so fees
    are in the cost); sells realise PnL on the part covered by the position, net of a quote fee. Fees paid in a
    third asset (BNB on Binance) are not converted and stay out of the cost basis."""
    base_fee = fill.fee if fill.fee_asset == rules.base else ZERO
    quote_fee = fill.fee if fill.fee_asset == rules.quote else ZERO
    if fill.side == Side.BUY:
        position.quantity += fill.quantity - base_fee
        position.cost += fill.price * fill.quantity + quote_fee
        return
    covered = min(fill.quantity, position.quantity)
    if covered <= 0:
        return  # selling assets that came with the account, not bought here: no cost basis, no PnL
    cost_of_sold = (position.cost * covered / position.quantity).quantize(PNL_PLACES, rounding=ROUND_HALF_EVEN)
    proceeds = fill.price * covered - quote_fee * covered / fill.quantity
    position.realized_pnl += (proceeds - cost_of_sold).quantize(PNL_PLACES, rounding=ROUND_HALF_EVEN)
    position.quantity -= covered
    position.cost -= cost_of_sold
    if position.quantity == 0:
        position.cost = ZERO


def average_entry(position: Position) -> Decimal | None:
    if position.quantity <= 0:
        return None
    return (position.cost / position.quantity).quantize(PNL_PLACES, rounding=ROUND_HALF_EVEN)


def unrealized(position: Position, market_price: Decimal | None) -> Decimal | None:
    if market_price is None:
        return None
    return position.quantity * market_price - position.cost
