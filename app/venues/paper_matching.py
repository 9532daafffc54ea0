"""The paper exchange's matching core: decides what fills, at which price, and the resulting status.

Pure, deterministic, no I/O and no balances: the execution engine owns funds, fees, persistence and events; it
calls `PaperMatcher` and records what it returns. Binance Spot is the reference for every rule:

- MARKET walks the opposite side of the depth snapshot (TAKER); out of book -> EXPIRED, filled part kept.
- LIMIT takes the marketable part at book prices (TAKER), then GTC rests / IOC expires / FOK all-or-nothing.
- Resting limits fill as MAKER at their own price when public trades print through them, or partially at the
  level when the traded volume there is smaller (shared out in price-time priority).
- LIMIT_MAKER (post-only) rests like a GTC limit; one that would take liquidity on arrival is rejected.
- STOP_* / TAKE_PROFIT_* trigger on the last trade price; an order that would trigger at once is rejected.
- TRAILING_STOP_MARKET follows the best trade price since placement (the highest for a SELL, the lowest for a BUY)
  and fires as a market order once a trade retraces `trailing_delta_bps` from it (Binance's trailing stop rule).
- Legs sharing an `oco_group`: the first fill or trigger of one expires the others (Binance reports the other
  leg of an OCO as EXPIRED).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from app.domain import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    SymbolRules,
    TimeInForce,
    floor_to_step,
    fmt,
)
from app.immutable import immutable
from app.market.models import Depth, Trade
from app.venues.paper_book import ZERO, Take, TakerBook, crosses, walk_quantity, walk_quote
from app.venues.paper_trailing import trail

WOULD_TRIGGER = "Order would trigger immediately."
WOULD_TAKE = "Order would immediately match and take."  # Binance's -2010 text for a LIMIT_MAKER that crosses
OCO_EXPIRED = "OCO: the other leg executed"
NO_LIQUIDITY = "no liquidity"


@immutable
class MatchOrder:
    """An order as the matcher sees it (already validated against the symbol's filters)."""

    id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce | None  # limit types; None means GTC
    quantity: Decimal | None  # base qty; None only for a MARKET order sized by quote_quantity
    quote_quantity: Decimal | None = None  # MARKET only: spend (BUY) / receive (SELL) this much quote
    price: Decimal | None = None  # LIMIT, STOP_LIMIT, TAKE_PROFIT_LIMIT
    stop_price: Decimal | None = None  # STOP_*, TAKE_PROFIT_*
    filled_quantity: Decimal = ZERO  # already filled (used by restore())
    oco_group: str | None = None  # legs of one group: the first fill or trigger of one cancels the others
    triggered: bool = False  # a STOP/TP order whose trigger already fired (restore)
    trailing_delta_bps: int | None = None  # TRAILING_STOP_MARKET


@immutable
class MatchFill:
    """One execution of an order; `trade_id` is unique within the matcher and deterministic."""

    order_id: str
    price: Decimal
    quantity: Decimal
    liquidity: Liquidity
    trade_id: str
    ts: int


@immutable
class MatchResult:
    """What happened to one order in one matcher call; `status` is its status after it.

    A trigger that fires without filling reports the unchanged status (OPEN) with `triggered=True`: an event
    to record, not a status transition. `related` carries results this one caused for other orders, which
    `submit` cannot return otherwise (OCO siblings canceled by an immediate fill).
    """

    order_id: str
    status: OrderStatus
    fills: tuple[MatchFill, ...] = ()
    reason: str | None = None
    triggered: bool = False
    related: tuple[MatchResult, ...] = ()


@dataclass(slots=True)
class _Live:
    """Matcher-side state of a resting or waiting order."""

    order: MatchOrder
    seq: int  # time priority: arrival, or the moment a stop-limit's trigger put it in the book
    filled: Decimal
    status: OrderStatus
    triggered: bool
    extreme: Decimal | None = None  # a trailing stop's best price since placement (None: from the next trade)

    @property
    def waiting(self) -> bool:
        """A stop/TP whose trigger has not fired yet: not in the book, takes no trade volume."""
        return self.order.type.is_triggered and not self.triggered

    @property
    def remaining(self) -> Decimal:
        assert self.order.quantity is not None  # resting orders are always sized in base
        return self.order.quantity - self.filled


def trigger_fires(order: MatchOrder, last_price: Decimal) -> bool:
    """Binance trigger rule on the last price: stops on an adverse move, take-profits on a favourable one."""
    assert order.stop_price is not None
    buy = order.side is Side.BUY
    if order.type.is_stop:
        return last_price >= order.stop_price if buy else last_price <= order.stop_price
    return last_price <= order.stop_price if buy else last_price >= order.stop_price


class PaperMatcher:
    """Deterministic matching for the paper venue: one instance holds every symbol's resting orders.

    `seed` is kept for the venue's fill model contract (same seed + same calls = same results); the current
    rules need no randomness, so results do not depend on it.
    """

    def __init__(self, rules: Mapping[str, SymbolRules], *, seed: int = 42) -> None:
        self.seed = seed
        self._rules = dict(rules)
        self._live: dict[str, _Live] = {}
        self._seq = 0
        self._trade_seq = 0
        # Groups whose first execution already happened: a leg arriving later is canceled at once.
        self._spent_groups: set[str] = set()

    # ---- public API ---------------------------------------------------------------------------------------

    def submit(self, order: MatchOrder, depth: Depth | None, last_price: Decimal | None, ts: int) -> MatchResult:
        """Accept a new order (status PENDING before this call) and match what is marketable now."""
        problem = self._invalid(order)
        if problem is not None:
            return MatchResult(order.id, OrderStatus.REJECTED, reason=problem)
        if order.oco_group is not None and order.oco_group in self._spent_groups:
            return MatchResult(order.id, OrderStatus.EXPIRED, reason=OCO_EXPIRED)
        if order.type.is_triggered:
            if order.type.has_stop_price and last_price is not None and trigger_fires(order, last_price):
                return MatchResult(order.id, OrderStatus.REJECTED, reason=WOULD_TRIGGER)
            self._rest(order, ZERO, OrderStatus.OPEN, triggered=False)
            self._live[order.id].extreme = last_price  # a trailing stop tracks from the price at placement
            return MatchResult(order.id, OrderStatus.OPEN)
        book = TakerBook(depth, order.symbol)
        if order.type is OrderType.LIMIT_MAKER and order.price is not None and crosses(book, order.side, order.price):
            return MatchResult(order.id, OrderStatus.REJECTED, reason=WOULD_TAKE)
        result = self._execute(order, ZERO, OrderStatus.PENDING, book, ts, triggered=False)
        related = tuple(self._after_execution(order, result))
        return replace(result, related=related) if related else result

    def on_trade(self, trade: Trade, depth: Depth | None) -> list[MatchResult]:
        """A public trade printed: fill resting limits it reaches, then fire the stops/TPs it triggers.

        Resting orders go first (the trade hit the book they were in); triggers fire after the print, in
        arrival order, and their market parts share one private copy of `depth`. One result per order at most.
        """
        results: list[MatchResult] = []
        book = TakerBook(depth, trade.symbol)
        mine = [live for live in self._live.values() if live.order.symbol == trade.symbol]

        # Volume printed exactly at a level is shared out once, per side, in price-time priority.
        pool = {Side.BUY: trade.qty, Side.SELL: trade.qty}
        resting = sorted((live for live in mine if not live.waiting), key=_priority)
        for live in resting:
            if live.order.id not in self._live:
                continue  # canceled earlier in this call as an OCO sibling
            fill_qty = self._maker_quantity(live, trade, pool)
            if fill_qty <= 0:
                continue
            assert live.order.price is not None
            fill = self._fill(live.order.id, live.order.price, fill_qty, Liquidity.MAKER, trade.ts)
            first_fill = live.filled == 0
            live.filled += fill_qty
            status = OrderStatus.FILLED if live.remaining <= 0 else OrderStatus.PARTIALLY_FILLED
            result = self._update(live, status, (fill,))
            results.append(result)
            if first_fill:
                results.extend(self._after_execution(live.order, result))

        for live in [live for live in mine if live.waiting]:
            if live.order.id not in self._live:
                continue
            if live.order.trailing_delta_bps is not None:
                live.extreme, fires = trail(live.order.side, live.order.trailing_delta_bps, live.extreme, trade.price)
            else:
                fires = trigger_fires(live.order, trade.price)
            if not fires:
                continue
            del self._live[live.order.id]  # re-rested by _execute if a limit remainder stays in the book
            result = self._execute(live.order, live.filled, live.status, book, trade.ts, triggered=True)
            results.append(result)
            results.extend(self._after_execution(live.order, result))
        return results

    def has_live_orders(self, symbol: str) -> bool:
        """Whether a public trade on `symbol` could touch anything (resting or waiting orders)."""
        return any(live.order.symbol == symbol for live in self._live.values())

    def cancel(self, order_id: str) -> bool:
        """Remove a resting or waiting order; False if unknown or already terminal. OCO siblings stay."""
        return self._live.pop(order_id, None) is not None

    def restore(self, order: MatchOrder) -> None:
        """Put an open order back after a restart, without matching (call in the original arrival order)."""
        if order.id in self._live:
            raise ValueError(f"order {order.id} is already in the matcher")
        if order.quantity is None or order.type is OrderType.MARKET:
            raise ValueError(f"order {order.id}: a market order never rests and cannot be restored")
        # For a stop/TP, a fill implies the trigger fired; plain limits have no trigger at all.
        triggered = order.type.is_triggered and (order.triggered or order.filled_quantity > 0)
        if order.type.is_triggered and triggered and not order.type.has_limit_price:
            raise ValueError(f"order {order.id}: a triggered *_MARKET order has already executed")
        status = OrderStatus.PARTIALLY_FILLED if order.filled_quantity > 0 else OrderStatus.OPEN
        self._rest(order, order.filled_quantity, status, triggered=triggered)

    def open_orders(self, symbol: str | None = None) -> list[MatchOrder]:
        """Resting and waiting orders in time-priority order, with their current fill and trigger state."""
        lives = sorted(self._live.values(), key=lambda live: live.seq)
        return [
            replace(live.order, filled_quantity=live.filled, triggered=live.triggered)
            for live in lives
            if symbol is None or live.order.symbol == symbol
        ]

    # ---- execution ------------------------------------------------------------------------------------

    def _execute(
        self,
        order: MatchOrder,
        filled: Decimal,
        prior: OrderStatus,
        book: TakerBook,
        ts: int,
        *,
        triggered: bool,
    ) -> MatchResult:
        """Run a market/limit order (or a stop/TP that just fired) against `book`; rest a GTC remainder."""
        rules = self._rules[order.symbol]
        if not order.type.has_limit_price:
            return self._execute_market(order, prior, book, ts, rules, triggered=triggered)
        assert order.quantity is not None and order.price is not None
        remaining = order.quantity - filled
        takes = walk_quantity(book, order.side, remaining, rules.step_size, order.price)
        taken = sum((q for _, q in takes), ZERO)
        tif = order.time_in_force or TimeInForce.GTC
        if tif is TimeInForce.FOK and taken < remaining:
            reason = f"FOK: only {fmt(taken)} of {fmt(remaining)} available at {fmt(order.price)} or better."
            return MatchResult(order.id, OrderStatus.EXPIRED, reason=reason, triggered=triggered)
        book.consume(order.side, takes)
        fills = self._taker_fills(order.id, takes, ts)
        filled += taken
        if filled >= order.quantity:
            return MatchResult(order.id, OrderStatus.FILLED, fills, triggered=triggered)
        if tif is TimeInForce.IOC:
            reason = f"IOC: {fmt(order.quantity - filled)} not available at {fmt(order.price)} or better."
            return MatchResult(order.id, OrderStatus.EXPIRED, fills, reason=reason, triggered=triggered)
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
        self._rest(order, filled, status, triggered=triggered)
        return MatchResult(order.id, status, fills, triggered=triggered)

    def _execute_market(
        self,
        order: MatchOrder,
        prior: OrderStatus,
        book: TakerBook,
        ts: int,
        rules: SymbolRules,
        *,
        triggered: bool,
    ) -> MatchResult:
        if not book.has_liquidity(order.side):
            # REJECTED is only legal for a fresh order; a fired stop that finds no book expires instead.
            status = OrderStatus.REJECTED if prior is OrderStatus.PENDING else OrderStatus.EXPIRED
            return MatchResult(order.id, status, reason=NO_LIQUIDITY, triggered=triggered)
        if order.quantity is None:
            assert order.quote_quantity is not None
            takes, complete = walk_quote(book, order.side, order.quote_quantity, rules.step_size)
            if not takes:
                reason = "quote_quantity does not buy one step of the base asset at the best price."
                status = OrderStatus.REJECTED if prior is OrderStatus.PENDING else OrderStatus.EXPIRED
                return MatchResult(order.id, status, reason=reason, triggered=triggered)
        else:
            takes = walk_quantity(book, order.side, order.quantity, rules.step_size)
            complete = sum((q for _, q in takes), ZERO) >= order.quantity
        book.consume(order.side, takes)
        fills = self._taker_fills(order.id, takes, ts)
        if complete:
            return MatchResult(order.id, OrderStatus.FILLED, fills, triggered=triggered)
        got = fmt(sum((q for _, q in takes), ZERO))
        reason = f"The order book ran out: filled {got} before the liquidity was exhausted."
        return MatchResult(order.id, OrderStatus.EXPIRED, fills, reason=reason, triggered=triggered)

    def _maker_quantity(self, live: _Live, trade: Trade, pool: dict[Side, Decimal]) -> Decimal:
        """What a trade fills of a resting limit: all if traded through, else its share of the level."""
        price = live.order.price
        assert price is not None
        side = live.order.side
        through = trade.price < price if side is Side.BUY else trade.price > price
        if through:
            return live.remaining
        if trade.price != price:
            return ZERO
        qty = floor_to_step(min(live.remaining, pool[side]), self._rules[live.order.symbol].step_size)
        pool[side] -= qty
        return qty

    def _after_execution(self, order: MatchOrder, result: MatchResult) -> list[MatchResult]:
        """Cancel the other legs of the order's OCO group once it has filled or triggered."""
        group = order.oco_group
        if group is None or not (result.fills or result.triggered):
            return []
        self._spent_groups.add(group)
        siblings = sorted(
            (live for live in self._live.values() if live.order.oco_group == group and live.order.id != order.id),
            key=lambda live: live.seq,
        )
        for live in siblings:
            del self._live[live.order.id]
        return [MatchResult(live.order.id, OrderStatus.EXPIRED, reason=OCO_EXPIRED) for live in siblings]

    # ---- bookkeeping ----------------------------------------------------------------------------------

    def _invalid(self, order: MatchOrder) -> str | None:
        """A sentence if the order cannot be matched at all (inputs are validated upstream; a guard)."""
        if order.id in self._live:
            return f"Duplicate order id {order.id}."
        if order.symbol not in self._rules:
            return f"Unknown symbol {order.symbol}."
        if order.quantity is None and (order.type is not OrderType.MARKET or order.quote_quantity is None):
            return "quantity is required."
        if order.quantity is not None and order.quantity <= 0:
            return "quantity must be greater than 0."
        if order.quote_quantity is not None and order.quote_quantity <= 0:
            return "quote_quantity must be greater than 0."
        if order.type.has_limit_price and order.price is None:
            return "price is required."
        if order.type.has_stop_price and order.stop_price is None:
            return "stop_price is required."
        if order.type.is_trailing and order.trailing_delta_bps is None:
            return "trailing_delta_bps is required."
        return None

    def _rest(self, order: MatchOrder, filled: Decimal, status: OrderStatus, *, triggered: bool) -> None:
        self._seq += 1
        self._live[order.id] = _Live(order, self._seq, filled, status, triggered)

    def _update(self, live: _Live, status: OrderStatus, fills: tuple[MatchFill, ...]) -> MatchResult:
        live.status = status
        if status.is_terminal:
            del self._live[live.order.id]
        return MatchResult(live.order.id, status, fills)

    def _fill(self, order_id: str, price: Decimal, qty: Decimal, liquidity: Liquidity, ts: int) -> MatchFill:
        self._trade_seq += 1
        return MatchFill(order_id, price, qty, liquidity, f"P{self._trade_seq}", ts)

    def _taker_fills(self, order_id: str, takes: list[Take], ts: int) -> tuple[MatchFill, ...]:
        return tuple(self._fill(order_id, price, qty, Liquidity.TAKER, ts) for price, qty in takes)


def _priority(live: _Live) -> tuple[int, Decimal, int]:
    """Book priority across both sides: BUY before SELL, best price first, then time."""
    price = live.order.price
    assert price is not None
    return (0, -price, live.seq) if live.order.side is Side.BUY else (1, price, live.seq)
