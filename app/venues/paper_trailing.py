"""The trailing-stop rule of the paper exchange, as Binance states it (binance-spot-api-docs, trailing-stop FAQ): a
SELL follows the highest trade price since it was placed and fires on a decrease of `delta_bps` from it; a BUY
follows the lowest and fires on an increase. Pure: the matcher keeps the extreme per order."""

from __future__ import annotations

from decimal import Decimal

from app.domain import Side

BPS = Decimal(10_000)


def trail(side: Side, delta_bps: int, extreme: Decimal | None, price: Decimal) -> tuple[Decimal, bool]:
    """A trade at `price`: (the new extreme, whether the order fires). No extreme yet: this trade sets it."""
    delta = Decimal(delta_bps) / BPS
    if side is Side.SELL:
        if extreme is None or price >= extreme:
            return price, False
        return extreme, price <= extreme * (1 - delta)
    if extreme is None or price <= extreme:
        return price, False
    return extreme, price >= extreme * (1 + delta)
