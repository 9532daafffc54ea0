"""The kill switch: an account's trading state, kept in memory (loaded at start, changed by
app/trading_state_service.py) so that intake checks it without a database read, and the execution engine re-checks
it for orders that were already queued.

- ACTIVE: trade freely.
- REDUCE_ONLY: only orders that shrink a position. Spot positions (app/portfolio.py) are long or flat: the net base
  quantity bought through Tradewind, never below zero. So every BUY is refused (it opens or grows a long), and a
  SELL is allowed only for a `quantity` (base asset) at most the position's quantity; anything more would sell
  base the position does not hold, the spot form of opening a short. A SELL sized by `quote_quantity` is refused:
  its base quantity is only known when it fills. Bracket exits of an earlier entry are allowed (they close it).
- HALTED: no new order at all; the switch to HALTED cancels every open order of the account.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from sqlmodel import Session

from app.domain import OrderStatus, Side, fmt
from app.errors import Conflict
from storage.db import Database
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo

ZERO = Decimal(0)


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCE_ONLY = "REDUCE_ONLY"
    HALTED = "HALTED"


def refusal(
    state: TradingState, side: str, quantity: Decimal | None, quote_quantity: Decimal | None, position: Decimal
) -> Conflict | None:
    """Why an order may not go out in `state` with the account holding `position` (base) of its symbol; None if
    it may."""
    if state is TradingState.HALTED:
        return Conflict("Trading is halted on this account; no new orders are accepted.", code="TRADING_HALTED")
    if state is not TradingState.REDUCE_ONLY:
        return None
    if side == Side.BUY:
        return Conflict("This account is reduce-only: a BUY would open or grow a position.", code="REDUCE_ONLY")
    if quantity is None:
        return Conflict(
            "This account is reduce-only: size a SELL with quantity (base asset), not quote_quantity.",
            code="REDUCE_ONLY",
            field="quote_quantity",
        )
    if quantity > position:
        return Conflict(
            f"This account is reduce-only: SELL {fmt(quantity)} is more than the position {fmt(position)}.",
            code="REDUCE_ONLY",
            field="quantity",
        )
    return None


class QueuedOrder(Protocol):
    """The fields of a stored order the engine's re-check reads."""

    @property
    def account_id(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def quantity(self) -> Decimal | None: ...
    @property
    def quote_quantity(self) -> Decimal | None: ...
    @property
    def parent_id(self) -> str | None: ...


class TradingStates:
    """Every account's trading state (only the non-ACTIVE ones are stored), and, for REDUCE_ONLY accounts, their
    position quantities, kept current by the Recorder on every fill."""

    def __init__(self) -> None:
        self._states: dict[str, TradingState] = {}
        self._positions: dict[str, dict[str, Decimal]] = {}  # REDUCE_ONLY account id -> symbol -> quantity

    async def load(self, db: Database) -> None:
        """Read the stored states, and the positions of REDUCE_ONLY accounts (start-up)."""

        def read(session: Session) -> tuple[dict[str, str], list[tuple[str, str, Decimal]]]:
            states = account_repo.restricted_trading_states(session)
            reduce_only = [a for a, s in states.items() if s == TradingState.REDUCE_ONLY]
            rows = order_repo.position_rows(session, reduce_only)
            return states, [(r["account_id"], r["symbol"], r["quantity"]) for r in rows]

        states, positions = await db.read(read)
        self._states = {account_id: TradingState(state) for account_id, state in states.items()}
        reduce_only = [a for a, s in self._states.items() if s is TradingState.REDUCE_ONLY]
        self._positions = {account_id: {} for account_id in reduce_only}
        for account_id, symbol, quantity in positions:
            self._positions[account_id][symbol] = quantity

    def state(self, account_id: str) -> TradingState:
        return self._states.get(account_id, TradingState.ACTIVE)

    def set(self, account_id: str, state: TradingState, positions: Iterable[tuple[str, Decimal]] = ()) -> None:
        """Change the state in memory; `positions` (symbol, quantity) are the account's, read with the change."""
        if state is TradingState.ACTIVE:
            self._states.pop(account_id, None)
        else:
            self._states[account_id] = state
        if state is TradingState.REDUCE_ONLY:
            self._positions[account_id] = dict(positions)
        else:
            self._positions.pop(account_id, None)

    def position_moved(self, account_id: str, symbol: str, quantity: Decimal) -> None:
        """A fill moved a position (the Recorder tells every fill; only REDUCE_ONLY accounts keep it)."""
        held = self._positions.get(account_id)
        if held is not None:
            held[symbol] = quantity

    def position(self, account_id: str, symbol: str) -> Decimal:
        return self._positions.get(account_id, {}).get(symbol, ZERO)

    def check(
        self, account_id: str, symbol: str, side: str, quantity: Decimal | None, quote_quantity: Decimal | None
    ) -> None:
        """Intake: raise 409 TRADING_HALTED / REDUCE_ONLY if the account's state refuses this order."""
        state = self.state(account_id)
        if state is TradingState.ACTIVE:
            return
        refused = refusal(state, side, quantity, quote_quantity, self.position(account_id, symbol))
        if refused is not None:
            raise refused

    def at_execution(self, order: QueuedOrder, position: Decimal) -> tuple[OrderStatus, str] | None:
        """The engine's re-check of an order queued before the state changed, against the venue-side `position`:
        None to execute it, else how it ends: CANCELED when HALTED, REJECTED when reduce-only refuses it. A
        bracket's exit legs close their entry's position, so only HALTED stops them."""
        state = self.state(order.account_id)
        if state is TradingState.ACTIVE or (state is TradingState.REDUCE_ONLY and order.parent_id is not None):
            return None
        refused = refusal(state, order.side, order.quantity, order.quote_quantity, position)
        if refused is None:
            return None
        status = OrderStatus.CANCELED if state is TradingState.HALTED else OrderStatus.REJECTED
        return status, refused.message
