"""The paper venue: the built-in exchange. Matching is `PaperMatcher` (pure); this adapter feeds it the live
depth and last price from MarketState and converts stored orders to the matcher's view."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from app.domain import OrderType, Side, SymbolRules, TimeInForce
from app.market.models import Depth, Trade
from app.market.state import MarketState
from app.venues.paper_matching import MatchOrder, MatchResult, PaperMatcher
from storage.models import Order


def match_order(order: Order) -> MatchOrder:
    return MatchOrder(
        id=order.id,
        symbol=order.symbol,
        side=Side(order.side),
        type=OrderType(order.type),
        time_in_force=TimeInForce(order.time_in_force) if order.time_in_force else None,
        quantity=order.quantity,
        quote_quantity=order.quote_quantity,
        price=order.price,
        stop_price=order.stop_price,
        filled_quantity=order.filled_quantity,
        oco_group=order.oco_group,
        triggered=order.triggered_at is not None,
    )


class PaperVenue:
    """Runs only inside the execution engine's transactions (one caller at a time)."""

    name = "paper"

    def __init__(self, state: MarketState, rules: Mapping[str, SymbolRules], *, seed: int) -> None:
        self.state = state
        self.rules = rules
        self.seed = seed
        self.matcher = PaperMatcher(rules, seed=seed)

    def reset_book(self) -> None:
        """Forget every resting order (before restoring them from the database)."""
        self.matcher = PaperMatcher(self.rules, seed=self.seed)

    def depth(self, symbol: str) -> Depth | None:
        return self.state.depth(symbol, limit=1000)

    def last_price(self, symbol: str) -> Decimal | None:
        ticker = self.state.ticker(symbol)
        return ticker.price if ticker else None

    def preview(self, order: Order) -> tuple[tuple[Decimal, Decimal], ...]:
        return self.matcher.preview(match_order(order), self.depth(order.symbol))

    def submit(self, order: Order, ts: int) -> MatchResult:
        return self.matcher.submit(match_order(order), self.depth(order.symbol), self.last_price(order.symbol), ts)

    def on_trade(self, trade: Trade) -> list[MatchResult]:
        return self.matcher.on_trade(trade, self.depth(trade.symbol))

    def has_live_orders(self, symbol: str) -> bool:
        return self.matcher.has_live_orders(symbol)

    def cancel(self, order_id: str) -> bool:
        return self.matcher.cancel(order_id)

    def restore(self, order: Order) -> None:
        self.matcher.restore(match_order(order))

    def open_order_ids(self) -> set[str]:
        return {order.id for order in self.matcher.open_orders()}
