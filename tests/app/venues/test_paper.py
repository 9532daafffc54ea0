"""app/venues/paper.py: the paper venue's funds rules around matching (what the contract suite cannot pin down
exactly: the refusal's words and amounts, and the boundary where the balance just covers the fills)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.domain import OrderStatus, SymbolRules
from app.execution.records import OrderRecord
from app.market.models import Depth, Trade
from app.market.state import MarketState
from app.venues.paper import UNAFFORDABLE_AT_TRIGGER, PaperVenue

D = Decimal
SYM = "BTCUSDT"
RULES = {SYM: SymbolRules(SYM, "BTC", "USDT", D("0.01"), D("0.001"), min_qty=D("0.001"), min_notional=D("1"))}
# Asks 101 x 1 then 102 x 2; bids 99 x 1 then 98 x 2.
BOOK = Depth(SYM, ((D("99"), D("1")), (D("98"), D("2"))), ((D("101"), D("1")), (D("102"), D("2"))), ts=0)
ACCOUNT = "acc"


def venue(**balances: str) -> PaperVenue:
    state = MarketState([SYM])
    state.apply_depth(BOOK)
    state.apply_trade(Trade(SYM, D("100"), D("1"), "BUY", ts=1))
    paper = PaperVenue(state, RULES, seed=1)
    paper.ledger.set_balances(ACCOUNT, {asset: D(amount) for asset, amount in balances.items()})
    return paper


def order(oid: str, side: str, type_: str = "MARKET", **fields: object) -> OrderRecord:
    return OrderRecord(
        id=oid,
        user_id="user",
        account_id=ACCOUNT,
        client_order_id=f"tw{oid}",
        symbol=SYM,
        side=side,
        type=type_,
        status=OrderStatus.PENDING.value,
        created_at=1,
        updated_at=1,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("side", "fields", "balances", "reason"),
    [
        ("BUY", {"quantity": D("2")}, {"USDT": "202.99"}, "Insufficient balance: needs 203 USDT."),  # 101 + 102
        ("SELL", {"quantity": D("2")}, {"BTC": "1.999"}, "Insufficient balance: needs 2 BTC."),
        ("BUY", {"quote_quantity": D("203")}, {"USDT": "150"}, "Insufficient balance: needs 203 USDT."),
    ],
)
def test_a_market_order_the_balance_does_not_cover_is_rejected_and_moves_no_money(
    side: str, fields: dict[str, object], balances: dict[str, str], reason: str
) -> None:
    paper = venue(**balances)
    before = paper.ledger.snapshot(ACCOUNT)
    [report] = paper.submit(order("m", side, **fields), ts=5)
    assert (report.status, report.reason, report.executions) == (OrderStatus.REJECTED, reason, ())
    assert paper.ledger.snapshot(ACCOUNT) == before
    assert paper.open_order_ids() == set()
    assert paper.submit(order("m", side, **fields), ts=6)[0].status is OrderStatus.REJECTED  # not left live


def test_a_market_order_the_balance_just_covers_fills() -> None:
    paper = venue(USDT="203")
    [report] = paper.submit(order("m", "BUY", quantity=D("2")), ts=5)
    assert report.status is OrderStatus.FILLED
    assert [(e.price, e.quantity) for e in report.executions] == [(D("101"), D("1")), (D("102"), D("1"))]
    assert paper.ledger.free(ACCOUNT, "USDT") == 0


def test_a_stop_that_fires_into_a_dearer_book_than_its_lock_expires_with_the_trigger_reason() -> None:
    paper = venue(USDT="300")
    stop = order("s", "BUY", "STOP_MARKET", quantity=D("2"), stop_price=D("105"))
    assert paper.submit(stop, ts=5)[0].status is OrderStatus.OPEN  # locks 2 x 105 = 210 USDT
    stop.status = OrderStatus.OPEN.value
    assert paper.ledger.free(ACCOUNT, "USDT") == D("90")
    paper.state.apply_depth(Depth(SYM, ((D("140"), D("1")),), ((D("150"), D("1")), (D("160"), D("2"))), ts=6))
    [report] = paper.on_trade(Trade(SYM, D("106"), D("1"), "BUY", ts=7))  # takes 150 + 160 = 310 > 300
    assert (report.status, report.reason, report.executions) == (OrderStatus.EXPIRED, UNAFFORDABLE_AT_TRIGGER, ())
    assert paper.ledger.snapshot(ACCOUNT) == [("USDT", D("300"), D("0"))]  # the lock released, nothing spent
