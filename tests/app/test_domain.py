"""The order state machine: one table, and nothing outside it."""

from __future__ import annotations

import pytest

from app.domain import ALLOWED_TRANSITIONS, IllegalTransition, OrderStatus, check_transition

S = OrderStatus
EXPECTED = {
    S.PENDING: {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED},
    S.OPEN: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REPLACED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REPLACED},
    S.FILLED: set(),
    S.CANCELED: set(),
    S.REJECTED: set(),
    S.EXPIRED: set(),
    S.REPLACED: set(),
}


def test_the_transition_table_is_exactly_the_documented_one() -> None:
    assert {status: set(allowed) for status, allowed in ALLOWED_TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("new", list(S))
def test_check_transition_allows_the_table_and_refuses_everything_else(current: S, new: S) -> None:
    if new in EXPECTED[current]:
        check_transition(current, new)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, new)


def test_terminal_states_are_final_and_only_pending_can_be_rejected() -> None:
    assert {s for s in S if s.is_terminal} == {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.REPLACED}
    assert [s for s in S if S.REJECTED in ALLOWED_TRANSITIONS[s]] == [S.PENDING]
