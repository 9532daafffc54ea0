"""Order-book walking for the paper exchange: what a taker would get from a depth snapshot.

Pure and deterministic. A `TakerBook` is a private, mutable copy of one snapshot, so several takers handled in
the same matcher call (stops fired by one trade) share the liquidity instead of each taking the same levels.
The public market is never changed: paper orders are too small to move it, and the next snapshot replaces it.
"""

from __future__ import annotations

from decimal import Decimal

from app.domain import Side, floor_to_step
from app.market.models import Depth

Take = tuple[Decimal, Decimal]  # (price, base quantity) taken at one level

ZERO = Decimal(0)


class TakerBook:
    """A consumable copy of a depth snapshot for one symbol (levels best first)."""

    __slots__ = ("_copies", "_depth")

    def __init__(self, depth: Depth | None, symbol: str) -> None:
        # A snapshot of another symbol is no liquidity at all, never a wrong price.
        self._depth = depth if depth is not None and depth.symbol == symbol else Depth(symbol, (), (), ts=0)
        self._copies: dict[Side, list[list[Decimal]]] = {}

    def levels(self, taker: Side) -> list[list[Decimal]]:
        """The side a taker consumes: asks for a BUY, bids for a SELL (copied on first use: most calls take from
        one side only)."""
        copy = self._copies.get(taker)
        if copy is None:
            side = self._depth.asks if taker is Side.BUY else self._depth.bids
            copy = self._copies[taker] = [[p, q] for p, q in side if q > 0]
        return copy

    def has_liquidity(self, taker: Side) -> bool:
        """True when the side a taker of `taker` would consume has at least one level."""
        return any(q > 0 for _, q in self.levels(taker))

    def consume(self, taker: Side, takes: list[Take]) -> None:
        """Remove what a taker got, so the next taker in the same call sees what is left."""
        remaining = dict(takes)
        for level in self.levels(taker):
            got = remaining.pop(level[0], ZERO)
            level[1] -= got


def crosses(book: TakerBook, taker: Side, price: Decimal) -> bool:
    """Whether a limit at `price` reaches the opposite side's best level (Binance's LIMIT_MAKER refusal test)."""
    levels = book.levels(taker)
    return bool(levels) and (levels[0][0] <= price if taker is Side.BUY else levels[0][0] >= price)


def _at_or_better(taker: Side, price: Decimal, limit: Decimal | None) -> bool:
    if limit is None:
        return True
    return price <= limit if taker is Side.BUY else price >= limit


def walk_quantity(
    book: TakerBook, taker: Side, quantity: Decimal, step: Decimal, limit: Decimal | None = None
) -> list[Take]:
    """Take up to `quantity` base, level by level (the walk is the slippage), stopping beyond `limit`."""
    takes: list[Take] = []
    remaining = quantity
    for price, available in book.levels(taker):
        if remaining <= 0 or not _at_or_better(taker, price, limit):
            break
        # Floored to the step: an off-grid level quantity must never produce an off-grid fill.
        qty = floor_to_step(min(available, remaining), step)
        if qty > 0:
            takes.append((price, qty))
            remaining -= qty
    return takes


def walk_quote(book: TakerBook, taker: Side, quote: Decimal, step: Decimal) -> tuple[list[Take], bool]:
    """Spend (BUY) or receive (SELL) up to `quote`, level by level, in whole steps of base.

    Returns the takes and whether the order is complete: the quote left cannot pay for one more step at the
    next price. False means the book ran out first.
    """
    takes: list[Take] = []
    left = quote
    last_price: Decimal | None = None
    for price, available in book.levels(taker):
        if available <= 0:
            continue
        last_price = price
        affordable = floor_to_step(left / price, step)
        qty = floor_to_step(min(available, affordable), step)
        if qty > 0:
            takes.append((price, qty))
            left -= price * qty
        if affordable <= available:
            return takes, True  # this level can take all that is left: whatever remains is dust
    # Book exhausted: complete only if what is left would not buy one step even at the last price seen.
    if last_price is None:
        return takes, False
    return takes, left < last_price * step if step > 0 else left == 0
