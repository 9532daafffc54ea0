"""Order-book walking for the paper exchange: what a taker would get from a depth snapshot.

Pure and deterministic. A `TakerBook` is a private, consumable view of one snapshot, so several takers handled in
the same matcher call (stops fired by one trade) share the liquidity instead of each taking the same levels.
The public market is never changed: paper orders are too small to move it, and the next snapshot replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from app.domain import Side, floor_to_step
from app.market.models import Depth, PriceLevel

Take = tuple[Decimal, Decimal]  # (price, base quantity) taken at one level

ZERO = Decimal(0)


class TakerBook:
    """A consumable view of a depth snapshot for one symbol (levels best first).

    Nothing is copied until a taker consumes: most calls only look (a market order's funds check walks the book
    once, then its execution walks it again), and copying every level for each look cost more than the walk.
    """

    __slots__ = ("_depth", "_views")

    def __init__(self, depth: Depth | None, symbol: str) -> None:
        # A snapshot of another symbol is no liquidity at all, never a wrong price.
        self._depth = depth if depth is not None and depth.symbol == symbol else Depth(symbol, (), (), ts=0)
        self._views: dict[Side, Sequence[PriceLevel]] = {}

    def levels(self, taker: Side) -> Sequence[PriceLevel]:
        """The side a taker consumes: asks for a BUY, bids for a SELL, less what earlier takers of this book got
        (a level taken whole stays, at zero)."""
        view = self._views.get(taker)
        if view is None:  # a Depth holds no empty levels (app/market/models.py)
            view = self._depth.asks if taker is Side.BUY else self._depth.bids
        return view

    def has_liquidity(self, taker: Side) -> bool:
        """True when the side a taker of `taker` would consume has at least one level."""
        return any(q > 0 for _, q in self.levels(taker))

    def consume(self, taker: Side, takes: list[Take]) -> None:
        """Remove what a taker got, so the next taker in the same call sees what is left. Takes come from the
        front of the book, so only the levels up to the last one taken are rebuilt."""
        if not takes:
            return
        levels = self.levels(taker)
        remaining = dict(takes)
        after: list[PriceLevel] = []
        for index, (price, quantity) in enumerate(levels):
            if not remaining:
                after.extend(levels[index:])
                break
            after.append((price, quantity - remaining.pop(price, ZERO)))
        self._views[taker] = after


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
