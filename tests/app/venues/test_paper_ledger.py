"""The paper venue's ledger: locks, releases, fills and resets move money exactly and say what they touched."""

from __future__ import annotations

from decimal import Decimal

from app.domain import Side, SymbolRules
from app.portfolio import Requirement
from app.venues.paper_ledger import PaperLedger

D = Decimal
RULES = SymbolRules("BTCUSDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5"))


def test_lock_release_and_a_fill_conserve_money() -> None:
    ledger = PaperLedger()
    ledger.load_account("a", [("USDT", D(1000), D(0))])
    assert ledger.lock("o1", "a", Requirement("USDT", D(600)))
    assert not ledger.lock("o2", "a", Requirement("USDT", D(500)))  # short: nothing changes
    assert ledger.snapshot("a") == [("USDT", D(400), D(600))]
    ledger.release("o1")
    ledger.trade("a", RULES, Side.BUY, D(60000), D("0.01"), D("0.00001"))
    assert ledger.snapshot("a") == [("BTC", D("0.00999"), D(0)), ("USDT", D(400), D(0))]
    assert ledger.take_touched() == {"a": {"USDT", "BTC"}}
    assert ledger.take_touched() == {}


def test_a_reset_keeps_exactly_the_given_balances() -> None:
    ledger = PaperLedger()
    ledger.load_account("a", [("USDT", D(5), D(1)), ("BTC", D(2), D(0))])
    assert ledger.set_balances("a", {"USDT": D(500), "ETH": D(2)}) == ["BTC"]
    assert ledger.snapshot("a") == [("ETH", D(2), D(0)), ("USDT", D(500), D(0))]
