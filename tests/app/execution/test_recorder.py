"""The one recorder, on its own: transitions always checked, fills once, positions, one bracket sizing rule."""

from __future__ import annotations

from decimal import Decimal

from app.domain import OrderStatus, SymbolRules
from app.execution.changes import Changes
from app.execution.recorder import Recorder, applies, bracket_quantity
from app.execution.records import Execution, OrderRecord, Report
from app.open_orders import OpenOrderCounts
from app.portfolio import PositionState

D = Decimal
RULES = SymbolRules("BTCUSDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5"))
S = OrderStatus


def order(**fields: object) -> OrderRecord:
    base: dict[str, object] = {
        "id": "o1",
        "user_id": "u1",
        "account_id": "a1",
        "client_order_id": "tw-o1",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "status": "OPEN",
        "created_at": 1,
        "updated_at": 1,
        "quantity": D("0.02"),
        "price": D("60000"),
    }
    return OrderRecord(**{**base, **fields})  # type: ignore[arg-type]


def fill(qty: str, trade_id: str | None = None, fee: str = "0.00001") -> Execution:
    return Execution(D("60000"), D(qty), D(fee), "BTC", "MAKER", 5, venue_trade_id=trade_id)


class Book:
    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], PositionState] = {}

    def __call__(self, account_id: str, symbol: str) -> PositionState:
        return self.positions.setdefault((account_id, symbol), PositionState(account_id, symbol))


def test_a_partial_then_a_full_fill_move_status_totals_position_and_events() -> None:
    recorder, book, out, o = Recorder(), Book(), Changes(), order()
    recorder.record(o, Report("o1", S.PARTIALLY_FILLED, (fill("0.01", "t1"),)), RULES, book, out)
    recorder.record(o, Report("o1", S.FILLED, (fill("0.01", "t2"),)), RULES, book, out)
    assert o.status == S.FILLED and o.filled_quantity == D("0.02") and o.fee == D("0.00002")
    assert book.positions[("a1", "BTCUSDT")].quantity == D("0.01998")
    assert [e.type for e in out.events] == ["FILL", "ORDER_UPDATE", "FILL", "ORDER_UPDATE"]
    assert [e.data["status"] for e in out.events if e.type == "ORDER_UPDATE"] == ["PARTIALLY_FILLED", "FILLED"]
    assert len(out.fills) == 2 and out.updated == {"o1": o}


def test_a_fill_reported_twice_is_recorded_once() -> None:
    recorder, book, out, o = Recorder(), Book(), Changes(), order()
    report = Report("o1", S.PARTIALLY_FILLED, (fill("0.01", "t1"),))
    recorder.record(o, report, RULES, book, out)
    recorder.record(o, report, RULES, book, out, known_trades={"t1"})
    assert o.filled_quantity == D("0.01") and len(out.fills) == 1


def test_a_stale_report_changes_nothing_but_its_new_fills_are_facts() -> None:
    recorder, book, out, o = Recorder(), Book(), Changes(), order(status="FILLED", filled_quantity=D("0.01"))
    recorder.record(o, Report("o1", S.OPEN), RULES, book, out)  # an old NEW message, late
    assert o.status == S.FILLED and not out.events
    recorder.record(o, Report("o1", S.CANCELED, reason="late"), RULES, book, out)  # terminal is final
    assert o.status == S.FILLED and o.reject_reason is None and not out.events
    recorder.record(o, Report("o1", S.PARTIALLY_FILLED, (fill("0.01", "t9"),)), RULES, book, out)
    assert o.status == S.FILLED and o.filled_quantity == D("0.02") and len(out.fills) == 1


def test_only_moves_in_the_table_apply() -> None:
    assert applies(S.PENDING, S.REJECTED) and applies(S.PARTIALLY_FILLED, S.PARTIALLY_FILLED)
    assert not applies(S.OPEN, S.REJECTED) and not applies(S.OPEN, S.OPEN) and not applies(S.FILLED, S.OPEN)


def test_one_bracket_sizing_rule_net_of_a_base_fee_floored_to_the_step() -> None:
    buy = order(filled_quantity=D("0.01"), fee=D("0.00001"), fee_asset="BTC")
    assert bracket_quantity(buy, RULES) == D("0.00999")
    sell = order(side="SELL", filled_quantity=D("0.01"), fee=D("0.6"), fee_asset="USDT")
    assert bracket_quantity(sell, RULES) == D("0.01")
    third_asset = order(filled_quantity=D("0.01"), fee=D("0.0001"), fee_asset="BNB")
    assert bracket_quantity(third_asset, RULES) == D("0.01")


def test_a_filled_bracket_entry_gets_its_exit_pair_and_the_open_order_count_follows() -> None:
    counts = OpenOrderCounts()
    counts.reserve("a1", "BTCUSDT")
    recorder, out = Recorder(counts), Changes()
    entry = order(status="PENDING", take_profit_price=D("61000"), stop_loss_price=D("59000"), quantity=D("0.01"))
    legs = recorder.record(entry, Report("o1", S.FILLED, (fill("0.01"),)), RULES, Book(), out)
    assert [(leg.type, leg.quantity, leg.side) for leg in legs] == [
        ("LIMIT", D("0.00999"), "SELL"),
        ("STOP_MARKET", D("0.00999"), "SELL"),
    ]
    assert legs[0].oco_group == legs[1].oco_group and set(out.inserted) == {leg.id for leg in legs}
    assert counts.count("a1", "BTCUSDT") == 2  # the entry ended, its two exits opened


def test_exits_below_the_minimum_are_skipped_with_a_notice() -> None:
    recorder, out = Recorder(), Changes()
    entry = order(status="PENDING", take_profit_price=D("61000"), stop_loss_price=D("59000"), quantity=D("0.00005"))
    assert recorder.record(entry, Report("o1", S.FILLED, (fill("0.00005", fee="0"),)), RULES, Book(), out) == []
    assert [e.data["code"] for e in out.events if e.type == "NOTICE"] == ["BRACKET_SKIPPED"]
