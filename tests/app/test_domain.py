"""The pure domain: the order state machine (one table, nothing outside it), order types, amounts on the wire."""

from __future__ import annotations

from decimal import Decimal

import pytest

import app.domain as domain
from app.domain import ALLOWED_TRANSITIONS, IllegalTransition, OrderStatus, Side, Venue, check_transition, fmt
from app.domain import OrderType as T

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


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("0.0100", "0.01"),
        ("1E+4", "10000"),
        ("10000.000", "10000"),
        ("0E-8", "0"),
        ("-0.5", "-0.5"),
        ("0.00000001", "0.00000001"),
        ("123456789012345.123456789", "123456789012345.123456789"),
    ],
)
def test_fmt_writes_plain_notation_without_trailing_zeros(value: str, wire: str) -> None:
    assert fmt(Decimal(value)) == wire
    assert fmt(Decimal(value)) == wire  # a second time, from the cache
    assert fmt(None) is None


def test_fmt_gives_equal_amounts_one_form_whatever_their_exponent() -> None:
    assert {fmt(Decimal(v)) for v in ("1", "1.0", "1.000", "0.1E+1")} == {"1"}


def test_fmt_refuses_a_float_even_when_its_decimal_was_formatted_before() -> None:
    assert fmt(Decimal("0.5")) == "0.5"  # now cached, and 0.5 == Decimal("0.5") with the same hash
    with pytest.raises(AttributeError):  # as without the cache: a float has no Decimal's normalize
        fmt(0.5)  # type: ignore[arg-type]


def test_fmt_keeps_answering_once_its_cache_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(domain, "_FORMATTED_MAX", 3)
    monkeypatch.setattr(domain, "_FORMATTED", {})
    assert [fmt(Decimal(n) / 100) for n in range(10)] == ["0", *(f"0.0{n}" for n in range(1, 10))]
    assert len(domain._FORMATTED) <= 3


def test_stored_enums_find_members_by_stored_text_and_refuse_the_rest_as_the_class_does() -> None:
    assert Side.of("BUY") is Side.BUY
    assert Side.of(Side.SELL) is Side.SELL
    assert OrderStatus.of("PARTIALLY_FILLED") is S.PARTIALLY_FILLED
    assert Venue.of("binance-testnet") is Venue.BINANCE_TESTNET
    for wrong in ("buy", "", ["BUY"], {"side": "BUY"}, 7, None):  # raw JSON values reach it (app/orders.py)
        with pytest.raises(ValueError, match="is not a valid"):
            Side.of(wrong)


def test_order_type_properties() -> None:
    limit_priced = {T.LIMIT, T.LIMIT_MAKER, T.STOP_LIMIT, T.TAKE_PROFIT_LIMIT}
    with_tif = {T.LIMIT, T.STOP_LIMIT, T.TAKE_PROFIT_LIMIT}
    waiting = {T.STOP_MARKET, T.STOP_LIMIT, T.TAKE_PROFIT_MARKET, T.TAKE_PROFIT_LIMIT, T.TRAILING_STOP_MARKET}
    for kind in T:
        assert kind.has_limit_price == (kind in limit_priced)
        assert kind.takes_time_in_force == (kind in with_tif)
        assert kind.is_triggered == (kind in waiting)
        assert kind.has_stop_price == (kind in waiting - {T.TRAILING_STOP_MARKET})
        assert kind.is_stop == (kind in {T.STOP_MARKET, T.STOP_LIMIT})
