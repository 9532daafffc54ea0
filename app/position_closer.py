"""Close a position in one action: a MARKET SELL of the position's quantity (spot positions are long or flat,
app/portfolio.py), rounded down to the symbol's step, through normal intake (so the kill switch, limits and events
apply as to any order)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal

from sqlmodel import Session

from app.domain import OrderType, Side, SymbolRules, floor_to_step, fmt, normalize_symbol
from app.errors import NotFound, ValidationFailed
from app.orders import OrderRequest, OrderService, Submitted
from storage.models import Account, Position


class PositionCloser:
    def __init__(
        self,
        orders: OrderService,
        rules_for: Callable[[Account], Awaitable[Mapping[str, SymbolRules]]],
    ) -> None:
        self.orders = orders
        self.rules_for = rules_for

    async def close(self, user_id: str, symbol: str, account_id: str | None) -> Submitted:
        """Place the closing order (PENDING, like any order). 404 UNKNOWN_SYMBOL or NO_POSITION; 422
        POSITION_TOO_SMALL when the quantity rounded down to the step is below the symbol's minimum quantity or
        (where the market price is known) its minimum order value."""
        account = await self.orders.accounts.resolve(user_id, account_id)
        wanted = normalize_symbol(symbol)
        rules = (await self.rules_for(account)).get(wanted)
        if rules is None:
            raise NotFound(f"unknown symbol {wanted}", code="UNKNOWN_SYMBOL", field="symbol")
        held = await self.orders.db.read(lambda s: _held(s, account.id, wanted))
        if held is None or held <= 0:
            raise NotFound(f"There is no {wanted} position to close.", code="NO_POSITION", field="symbol")
        quantity = floor_to_step(held, rules.step_size)
        if quantity <= 0 or quantity < rules.min_qty:
            raise _too_small(f"{fmt(held)} {rules.base} is below the minimum quantity {fmt(rules.min_qty)}")
        price = self.orders.last_price(wanted) if account.venue in self.orders.priced_venues else None
        if price is not None and quantity * price < rules.min_notional:
            raise _too_small(
                f"{fmt(quantity)} {rules.base} is worth {fmt(quantity * price)} {rules.quote}, below the minimum "
                f"order value {fmt(rules.min_notional)} {rules.quote}"
            )
        request = OrderRequest(
            symbol=wanted,
            side=Side.SELL.value,
            type=OrderType.MARKET.value,
            quantity=fmt(quantity),
            account_id=account.id,
        )
        return await self.orders.submit(user_id, request)


def _held(session: Session, account_id: str, symbol: str) -> Decimal | None:
    row = session.get(Position, (account_id, symbol))
    return row.quantity if row is not None else None


def _too_small(reason: str) -> ValidationFailed:
    return ValidationFailed(f"The position is too small to close: {reason}.", code="POSITION_TOO_SMALL", field="symbol")
