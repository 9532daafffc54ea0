"""The open-order limit per account and symbol."""

from __future__ import annotations

import pytest

from app.errors import ValidationFailed
from app.open_orders import OpenOrderCounts


def test_the_limit_is_per_account_and_symbol_and_frees_when_an_order_ends() -> None:
    counts = OpenOrderCounts(limit=2)
    counts.load([("a1", "BTCUSDT", 1)])
    counts.reserve("a1", "BTCUSDT")
    with pytest.raises(ValidationFailed) as refused:
        counts.reserve("a1", "BTCUSDT")
    assert refused.value.code == "TOO_MANY_OPEN_ORDERS" and refused.value.field == "symbol"
    counts.reserve("a1", "ETHUSDT")
    counts.reserve("a2", "BTCUSDT")
    counts.release("a1", "BTCUSDT")
    counts.reserve("a1", "BTCUSDT")
    assert counts.count("a1", "BTCUSDT") == 2


def test_releasing_more_than_was_counted_never_goes_negative() -> None:
    counts = OpenOrderCounts(limit=1)
    counts.release("a1", "BTCUSDT")
    counts.reserve("a1", "BTCUSDT")
    assert counts.count("a1", "BTCUSDT") == 1
