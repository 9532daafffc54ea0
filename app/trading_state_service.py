"""Changing an account's trading state (the kill switch, app/trading_state.py): stored with its TRADING_STATE event
in one transaction, then applied to memory (what intake and the engine read), published, and — for HALTED — every
open order of the account is cancelled through the normal cancel path (paper and exchange alike)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from sqlmodel import Session

from app.activity import ActivityKind, record_in
from app.errors import NotFound, ValidationFailed
from app.events import UserEvent
from app.ids import now_ms
from app.orders import AccountResolver, store_event
from app.trading_state import TradingState, TradingStates
from storage.db import Database
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo


class OpenOrderCanceller(Protocol):
    async def cancel_all(self, user_id: str, account_id: str | None, symbol: str | None) -> int: ...


class TradingStateService:
    def __init__(
        self,
        db: Database,
        accounts: AccountResolver,
        states: TradingStates,
        orders: OpenOrderCanceller,
        publish: Callable[[UserEvent], None],
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.states = states
        self.orders = orders
        self.publish = publish

    async def change(self, user_id: str, account_id: str, raw_state: Any) -> dict[str, Any]:
        """Set the account's state (404 if not the user's, 422 for an unknown state). Setting the current state
        again changes nothing and tells nothing; HALTED cancels the open orders every time it is asked."""
        state = parse_state(raw_state)
        account = await self.accounts.resolve(user_id, account_id)

        def store(session: Session) -> tuple[str, list[tuple[str, Decimal]], UserEvent | None]:
            previous = account_repo.set_trading_state(session, account.id, state.value)
            if previous is None:
                raise NotFound("Account not found.", code="ACCOUNT_NOT_FOUND", field="account_id")
            positions = []
            if state is TradingState.REDUCE_ONLY:
                positions = [(row.symbol, row.quantity) for row in order_repo.positions(session, account.id)]
            event = None
            if previous != state:
                data = {"account_id": account.id, "state": state.value, "previous": previous}
                event = store_event(session, user_id, "TRADING_STATE", data, now_ms())
                detail = {"account": account.label, "state": state.value, "previous": previous}
                record_in(session, user_id, ActivityKind.TRADING_STATE_CHANGED, detail=detail)
            return previous, positions, event

        previous, positions, event = await self.db.write(store)
        self.states.set(account.id, state, positions)
        if event is not None:
            self.publish(event)
        canceled = 0
        if state is TradingState.HALTED:
            canceled = await self.orders.cancel_all(user_id, account.id, None)
        return {"account_id": account.id, "state": state.value, "previous": previous, "canceled": canceled}


def parse_state(raw: Any) -> TradingState:
    try:
        return TradingState(raw.upper() if isinstance(raw, str) else raw)
    except ValueError:
        allowed = ", ".join(s.value for s in TradingState)
        raise ValidationFailed(f"state must be one of {allowed}", field="state") from None
