"""The kill switch's rules (pure) and its memory: what each state refuses, and the engine's re-check."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from app.domain import OrderStatus
from app.errors import Conflict
from app.trading_state import TradingState, TradingStates, refusal

D = Decimal


@pytest.mark.parametrize(
    ("state", "side", "quantity", "quote", "position", "code"),
    [
        (TradingState.ACTIVE, "BUY", D("1"), None, D(0), None),
        (TradingState.ACTIVE, "SELL", D("5"), None, D(0), None),
        (TradingState.HALTED, "SELL", D("0.1"), None, D(1), "TRADING_HALTED"),
        (TradingState.REDUCE_ONLY, "BUY", D("0.1"), None, D(0), "REDUCE_ONLY"),  # opens a long
        (TradingState.REDUCE_ONLY, "BUY", D("0.1"), None, D(1), "REDUCE_ONLY"),  # grows a long
        (TradingState.REDUCE_ONLY, "SELL", D("1"), None, D(1), None),  # closes it exactly
        (TradingState.REDUCE_ONLY, "SELL", D("0.4"), None, D(1), None),  # shrinks it
        (TradingState.REDUCE_ONLY, "SELL", D("1.00001"), None, D(1), "REDUCE_ONLY"),  # would go short
        (TradingState.REDUCE_ONLY, "SELL", D("0.1"), None, D(0), "REDUCE_ONLY"),  # flat: opens a short
        (TradingState.REDUCE_ONLY, "SELL", None, D("100"), D(1), "REDUCE_ONLY"),  # size unknown until it fills
    ],
)
def test_what_each_state_refuses(
    state: TradingState, side: str, quantity: Decimal | None, quote: Decimal | None, position: Decimal, code: str | None
) -> None:
    refused = refusal(state, side, quantity, quote, position)
    assert (refused.code if refused else None) == code


@dataclass
class Queued:
    account_id: str = "a1"
    side: str = "BUY"
    quantity: Decimal | None = Decimal("0.1")
    quote_quantity: Decimal | None = None
    parent_id: str | None = None


def test_memory_follows_changes_and_fills_of_reduce_only_accounts_only() -> None:
    states = TradingStates()
    assert states.state("a1") is TradingState.ACTIVE
    states.set("a1", TradingState.REDUCE_ONLY, [("BTCUSDT", D("0.5"))])
    states.position_moved("a1", "BTCUSDT", D("0.2"))
    states.position_moved("a2", "BTCUSDT", D("9"))  # an ACTIVE account: not kept
    assert states.position("a1", "BTCUSDT") == D("0.2")
    assert states.position("a2", "BTCUSDT") == 0
    states.check("a1", "BTCUSDT", "SELL", D("0.2"), None)
    with pytest.raises(Conflict, match=r"more than the position 0\.2"):
        states.check("a1", "BTCUSDT", "SELL", D("0.3"), None)
    states.set("a1", TradingState.ACTIVE)
    states.check("a1", "BTCUSDT", "BUY", D("5"), None)
    assert states.position("a1", "BTCUSDT") == 0


def test_the_engine_cancels_when_halted_rejects_when_reduce_only_and_lets_bracket_exits_reduce() -> None:
    states = TradingStates()
    assert states.at_execution(Queued(), D(0)) is None
    states.set("a1", TradingState.REDUCE_ONLY)
    status, reason = states.at_execution(Queued(), D(0)) or (None, "")
    assert status is OrderStatus.REJECTED and "reduce-only" in reason
    assert states.at_execution(Queued(parent_id="entry"), D(0)) is None  # a bracket exit closes its entry
    states.set("a1", TradingState.HALTED)
    status, _ = states.at_execution(Queued(parent_id="entry"), D(0)) or (None, "")
    assert status is OrderStatus.CANCELED
