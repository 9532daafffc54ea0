"""The venue contract (STYLE.md habit 10): one set of behavioural tests every venue passes, written against the
services' public interface only (`services.orders`, `services.portfolio`, the user's event stream on
`services.bus`). A venue joins by subclassing `VenueContract` with its harness (harness.py); the tests never
branch on the venue. Where a venue does not meet the contract yet, its subclass marks that one test with
`differs_here(...)` (a strict xfail naming what differs).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, cast

import pytest

from app.domain import ALLOWED_TRANSITIONS, OrderStatus
from app.errors import Conflict, ValidationFailed
from app.events import UserEvent
from app.oco import OcoRequest, place_oco
from app.replacements import ReplaceRequest
from app.services import Services

from .harness import (
    BASE,
    BEST_ASK,
    BEST_BID,
    FEE_RATE,
    MID,
    QUOTE,
    STARTING_BALANCES,
    SYMBOL,
    VenueHarness,
)

D = Decimal
ORDER_KEYS = {
    "id", "client_order_id", "account_id", "symbol", "side", "type", "time_in_force", "quantity", "quote_quantity",
    "price", "stop_price", "trailing_delta_bps", "status", "filled_quantity", "avg_fill_price", "fee", "fee_asset",
    "reject_reason", "parent_id", "oco_group", "replaces", "take_profit_price", "stop_loss_price", "created_at",
    "updated_at",
}  # fmt: skip
FILL_KEYS = {
    "id", "order_id", "account_id", "symbol", "side", "price", "quantity", "fee", "fee_asset", "liquidity", "ts",
}  # fmt: skip
BALANCE_KEYS = {"asset", "free", "locked"}

ContractTest = TypeVar("ContractTest", bound=Callable[..., Awaitable[None]])


def differs_here(test: ContractTest, what: str) -> ContractTest:
    """The contract test `test`, expected to fail on this venue today (strict: it must fail). For a venue subclass:
    `test_x = differs_here(VenueContract.test_x, "what differs")`. Remove the line when the venue conforms."""

    @functools.wraps(test)
    async def run(self: VenueContract, venue: VenueHarness) -> None:
        await test(self, venue)

    return cast(ContractTest, pytest.mark.xfail(reason=f"contract: {what}", strict=True)(run))


@pytest.mark.asyncio(loop_scope="class")
class VenueContract:
    """The behaviour every venue shares. Subclasses set `harness` (and are named Test…). One harness (services,
    venue, user) serves the class; every test starts from a fresh account (fixtures in conftest.py)."""

    harness: ClassVar[type[VenueHarness]]

    # ---- market orders ------------------------------------------------------------------------------------------

    async def test_market_buy_fills_at_once_as_taker_with_the_fee_in_the_base_asset(self, venue: VenueHarness) -> None:
        order = await place(venue)
        assert statuses(venue, order["id"]) == ["PENDING", "FILLED"]
        assert (order["filled_quantity"], order["avg_fill_price"], order["fee"], order["fee_asset"]) == (
            "0.01",
            fmt(BEST_ASK),
            "0.00001",
            BASE,
        )
        assert [(f["price"], f["quantity"], f["liquidity"]) for f in order["fills"]] == [
            (fmt(BEST_ASK), "0.01", "TAKER")
        ]
        assert [e.data for e in events(venue, "FILL")] == order["fills"]
        assert await balances(venue) == {
            QUOTE: (STARTING_BALANCES[QUOTE] - BEST_ASK * D("0.01"), D(0)),
            BASE: (STARTING_BALANCES[BASE] + D("0.01") - D("0.00001"), D(0)),
        }

    async def test_market_sell_pays_the_fee_in_the_quote_asset(self, venue: VenueHarness) -> None:
        order = await place(venue, side="SELL", quantity="0.02")
        assert statuses(venue, order["id"]) == ["PENDING", "FILLED"]
        fee = BEST_BID * D("0.02") * FEE_RATE
        assert (order["avg_fill_price"], D(order["fee"]), order["fee_asset"]) == (fmt(BEST_BID), fee, QUOTE)
        assert await balances(venue) == {
            QUOTE: (STARTING_BALANCES[QUOTE] + BEST_BID * D("0.02") - fee, D(0)),
            BASE: (STARTING_BALANCES[BASE] - D("0.02"), D(0)),
        }

    async def test_market_buy_by_quote_quantity_spends_at_most_the_amount(self, venue: VenueHarness) -> None:
        order = await place(venue, quantity=None, quote_quantity="100")
        assert order["status"] == "FILLED"
        assert order["filled_quantity"] == "0.00166"  # 100 USDT / 60,010, down to the step
        spent = sum(D(f["price"]) * D(f["quantity"]) for f in order["fills"])
        assert spent <= 100

    async def test_a_market_order_the_book_cannot_fill_expires_with_what_it_got(self, venue: VenueHarness) -> None:
        await venue.set_book([(BEST_BID, D("0.01"))], [(BEST_ASK, D("0.01"))])
        order = await place(venue, quantity="0.02")
        assert order["status"] == "EXPIRED" and order["filled_quantity"] == "0.01"
        assert statuses(venue, order["id"]) == ["PENDING", "EXPIRED"]

    # ---- limit orders, time in force, partial fills -------------------------------------------------------------

    async def test_resting_limit_fills_partially_then_fully_as_maker(self, venue: VenueHarness) -> None:
        price = D(59000)
        order = await place(venue, type="LIMIT", price=str(price), quantity="0.03")
        assert order["status"] == "OPEN" and order["time_in_force"] == "GTC"
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE] - price * D("0.03"), price * D("0.03"))
        await venue.print_trade(price, D("0.01"))
        partial = await venue.app.orders.get(venue.user_id, order["id"])
        assert (partial["status"], partial["filled_quantity"]) == ("PARTIALLY_FILLED", "0.01")
        assert (await balances(venue, QUOTE))[1] == price * D("0.02")
        await venue.print_trade(price - 10, D(1))
        filled = await venue.app.orders.get(venue.user_id, order["id"])
        assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "PARTIALLY_FILLED", "FILLED"]
        assert [(f["price"], f["quantity"], f["fee"], f["liquidity"]) for f in filled["fills"]] == [
            ("59000", "0.01", "0.00001", "MAKER"),
            ("59000", "0.02", "0.00002", "MAKER"),
        ]
        assert [e.data for e in events(venue, "FILL")] == filled["fills"]
        assert await balances(venue) == {
            QUOTE: (STARTING_BALANCES[QUOTE] - price * D("0.03"), D(0)),
            BASE: (STARTING_BALANCES[BASE] + D("0.03") - D("0.00003"), D(0)),
        }

    async def test_a_crossing_limit_takes_the_book_up_to_its_price_and_rests_the_rest(
        self, venue: VenueHarness
    ) -> None:
        await venue.set_book([(BEST_BID, D(1))], [(BEST_ASK, D("0.01")), (BEST_ASK + 10, D(1))])
        order = await place(venue, type="LIMIT", price=fmt(BEST_ASK), quantity="0.03")
        assert (order["status"], order["filled_quantity"]) == ("PARTIALLY_FILLED", "0.01")
        assert [(f["price"], f["liquidity"]) for f in order["fills"]] == [(fmt(BEST_ASK), "TAKER")]
        assert (await balances(venue, QUOTE))[1] == BEST_ASK * D("0.02")

    async def test_ioc_fills_what_it_can_now_and_expires_the_rest(self, venue: VenueHarness) -> None:
        await venue.set_book([(BEST_BID, D(1))], [(BEST_ASK, D("0.01")), (BEST_ASK + 10, D("0.01"))])
        order = await place(venue, type="LIMIT", price=fmt(BEST_ASK), quantity="0.015", time_in_force="IOC")
        assert (order["status"], order["filled_quantity"], len(order["fills"])) == ("EXPIRED", "0.01", 1)
        assert statuses(venue, order["id"]) == ["PENDING", "EXPIRED"]
        assert (await balances(venue, QUOTE))[1] == 0

    async def test_fok_fills_completely_or_not_at_all(self, venue: VenueHarness) -> None:
        book = ([(BEST_BID, D(1))], [(BEST_ASK, D("0.01")), (BEST_ASK + 10, D("0.01"))])
        await venue.set_book(*book)
        missed = await place(venue, type="LIMIT", price=fmt(BEST_ASK), quantity="0.015", time_in_force="FOK")
        assert (missed["status"], missed["filled_quantity"], missed["fills"]) == ("EXPIRED", "0", [])
        assert statuses(venue, missed["id"]) == ["PENDING", "EXPIRED"]
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}
        await venue.set_book(*book)
        hit = await place(venue, type="LIMIT", price=fmt(BEST_ASK + 10), quantity="0.015", time_in_force="FOK")
        assert hit["status"] == "FILLED"
        assert [(f["price"], f["quantity"]) for f in hit["fills"]] == [
            (fmt(BEST_ASK), "0.01"),
            (fmt(BEST_ASK + 10), "0.005"),
        ]

    # ---- post-only (LIMIT_MAKER) -----------------------------------------------------------------------------------

    async def test_post_only_rests_and_fills_as_maker(self, venue: VenueHarness) -> None:
        price = BEST_BID + 5  # inside the spread: takes nothing
        order = await place(venue, type="LIMIT_MAKER", price=fmt(price))
        assert (order["status"], order["type"], order["time_in_force"]) == ("OPEN", "LIMIT_MAKER", None)
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE] - price * D("0.01"), price * D("0.01"))
        await venue.print_trade(price - 10, D(1))
        filled = await venue.app.orders.get(venue.user_id, order["id"])
        assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "FILLED"]
        assert [(f["price"], f["liquidity"]) for f in filled["fills"]] == [(fmt(price), "MAKER")]

    async def test_post_only_that_would_take_is_rejected_and_changes_nothing(self, venue: VenueHarness) -> None:
        for side, price in (("BUY", BEST_ASK), ("SELL", BEST_BID - 10)):
            order = await place(venue, type="LIMIT_MAKER", side=side, price=fmt(price))
            assert statuses(venue, order["id"]) == ["PENDING", "REJECTED"]
            assert order["reject_reason"] == "Order would immediately match and take."
            assert order["fills"] == []
        assert events(venue, "FILL") == []
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}

    async def test_post_only_takes_no_time_in_force(self, venue: VenueHarness) -> None:
        with pytest.raises(ValidationFailed) as refused:
            await venue.app.orders.submit(
                venue.user_id, venue.request(type="LIMIT_MAKER", price="59000", time_in_force="IOC")
            )
        assert refused.value.field == "time_in_force"
        assert venue.events == []

    # ---- trailing stop --------------------------------------------------------------------------------------------

    async def test_trailing_stop_follows_the_high_and_fires_on_the_retrace(self, venue: VenueHarness) -> None:
        order = await place(venue, type="TRAILING_STOP_MARKET", side="SELL", trailing_delta_bps=100)  # 1 %
        assert (order["status"], order["trailing_delta_bps"], order["stop_price"]) == ("OPEN", 100, None)
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.01"), D("0.01"))
        await venue.print_trade(D(60500), D("0.01"))  # a new high: the trigger follows it up to 59,895
        await venue.print_trade(D(59900), D("0.01"))  # 1 % below 60,000 but not below 60,500
        assert await status_of(venue, order) == "OPEN"
        await venue.print_trade(D(59895), D("0.01"))
        filled = await venue.app.orders.get(venue.user_id, order["id"])
        assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "FILLED"]
        assert [(f["price"], f["liquidity"]) for f in filled["fills"]] == [(fmt(BEST_BID), "TAKER")]
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.01"), D(0))

    async def test_trailing_stop_is_refused_at_intake_outside_its_rules(self, venue: VenueHarness) -> None:
        for fields, field in (
            ({"side": "SELL"}, "trailing_delta_bps"),  # missing
            ({"side": "SELL", "trailing_delta_bps": 5}, "trailing_delta_bps"),  # below Binance's 10
            ({"side": "SELL", "trailing_delta_bps": 2001}, "trailing_delta_bps"),
            ({"side": "SELL", "trailing_delta_bps": 100, "stop_price": "59000"}, "stop_price"),
            ({"side": "BUY", "trailing_delta_bps": 100}, "side"),
        ):
            with pytest.raises(ValidationFailed) as refused:
                await venue.app.orders.submit(venue.user_id, venue.request(type="TRAILING_STOP_MARKET", **fields))
            assert refused.value.field == field
        with pytest.raises(ValidationFailed) as refused:
            await venue.app.orders.submit(
                venue.user_id, venue.request(type="LIMIT", price="59000", trailing_delta_bps=100)
            )
        assert refused.value.field == "trailing_delta_bps"
        assert venue.events == []

    async def test_trailing_stop_survives_a_restart_and_fires_after_it(self, venue: VenueHarness) -> None:
        order = await place(venue, type="TRAILING_STOP_MARKET", side="SELL", trailing_delta_bps=100)
        await venue.restart()
        assert await status_of(venue, order) == "OPEN"
        await venue.print_trade(MID, D("0.01"))
        await venue.print_trade(MID * D("0.99"), D("0.01"))
        assert await status_of(venue, order) == "FILLED"

    async def test_trailing_stop_is_replaced_with_a_new_delta(self, venue: VenueHarness) -> None:
        old = await place(venue, type="TRAILING_STOP_MARKET", side="SELL", trailing_delta_bps=100)
        new = await modify(venue, old, trailing_delta_bps=200)
        assert (new["status"], new["trailing_delta_bps"]) == ("OPEN", 200)
        await venue.print_trade(D(59400), D("0.01"))  # 1 % down from 60,000: the old delta would have fired
        assert await status_of(venue, new) == "OPEN"
        await venue.print_trade(D(58800), D("0.01"))  # 2 %
        assert await status_of(venue, new) == "FILLED"
        assert await status_of(venue, old) == "REPLACED"

    # ---- modify / replace -------------------------------------------------------------------------------------------

    async def test_replace_moves_a_resting_limit_and_the_old_order_ends_replaced(self, venue: VenueHarness) -> None:
        old = await place(venue, type="LIMIT", price="58000")
        new = await modify(venue, old, price="58500")
        assert (new["status"], new["replaces"], new["price"], new["quantity"]) == ("OPEN", old["id"], "58500", "0.01")
        assert new["client_order_id"] != old["client_order_id"]
        assert statuses(venue, old["id"]) == ["PENDING", "OPEN", "REPLACED"]
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE] - D(585), D(585))
        await venue.print_trade(D(58400), D(1))
        assert await status_of(venue, new) == "FILLED"
        assert await status_of(venue, old) == "REPLACED"

    async def test_replace_after_a_partial_fill_keeps_the_fill_and_places_the_rest(self, venue: VenueHarness) -> None:
        old = await place(venue, type="LIMIT", price="59000", quantity="0.03")
        await venue.print_trade(D(59000), D("0.01"))
        new = await modify(venue, old, price="58900")
        assert (new["status"], new["quantity"], new["filled_quantity"]) == ("OPEN", "0.02", "0")
        replaced = await venue.app.orders.get(venue.user_id, old["id"])
        assert (replaced["status"], replaced["filled_quantity"], len(replaced["fills"])) == ("REPLACED", "0.01", 1)
        assert await balances(venue, QUOTE) == (
            STARTING_BALANCES[QUOTE] - D(590) - D(58900) * D("0.02"),
            D(58900) * D("0.02"),
        )

    async def test_replace_changes_quantity_and_stop_price(self, venue: VenueHarness) -> None:
        stop = await place(venue, type="STOP_MARKET", side="SELL", stop_price="59500")
        new = await modify(venue, stop, stop_price="59000", quantity="0.02")
        assert (new["status"], new["stop_price"], new["quantity"]) == ("OPEN", "59000", "0.02")
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.02"), D("0.02"))
        await venue.print_trade(D(59400), D("0.01"))  # the old trigger: nothing happens
        assert await status_of(venue, new) == "OPEN"
        await venue.print_trade(D(59000), D("0.01"))
        assert await status_of(venue, new) == "FILLED"

    async def test_a_replacement_the_venue_refuses_leaves_the_old_order_replaced(self, venue: VenueHarness) -> None:
        old = await place(venue, type="LIMIT_MAKER", price=fmt(BEST_BID))
        new = await modify(venue, old, price=fmt(BEST_ASK))  # post-only at the ask: would take
        assert (new["status"], new["reject_reason"]) == ("REJECTED", "Order would immediately match and take.")
        assert statuses(venue, old["id"]) == ["PENDING", "OPEN", "REPLACED"]
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}

    async def test_terminal_and_market_orders_cannot_be_replaced(self, venue: VenueHarness) -> None:
        market = await place(venue)
        with pytest.raises(ValidationFailed):
            await venue.app.orders.replace(venue.user_id, market["id"], ReplaceRequest(price="59000"))
        limit = await place(venue, type="LIMIT", price="58000")
        await venue.app.orders.cancel(venue.user_id, limit["id"])
        await venue.settle()
        with pytest.raises(Conflict):
            await venue.app.orders.replace(venue.user_id, limit["id"], ReplaceRequest(price="58100"))

    # ---- stops and take-profits ---------------------------------------------------------------------------------

    async def test_stop_market_waits_for_its_trigger_then_fills_as_taker(self, venue: VenueHarness) -> None:
        order = await place(venue, type="STOP_MARKET", side="SELL", stop_price="59500")
        assert order["status"] == "OPEN"
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.01"), D("0.01"))
        await venue.print_trade(D(59600), D("0.01"))
        assert (await venue.app.orders.get(venue.user_id, order["id"]))["status"] == "OPEN"
        await venue.print_trade(D(59500), D("0.01"))
        filled = await venue.app.orders.get(venue.user_id, order["id"])
        assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "FILLED"]
        assert [(f["price"], f["liquidity"], f["fee_asset"]) for f in filled["fills"]] == [
            (fmt(BEST_BID), "TAKER", QUOTE)
        ]
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.01"), D(0))

    async def test_stop_limit_and_take_profit_orders_trigger_on_the_last_price(self, venue: VenueHarness) -> None:
        stop_limit = await place(venue, type="STOP_LIMIT", side="SELL", stop_price="59400", price="59300")
        take_profit = await place(venue, type="TAKE_PROFIT_MARKET", side="SELL", stop_price="60500")
        take_limit = await place(venue, type="TAKE_PROFIT_LIMIT", side="SELL", stop_price="60600", price="60550")
        assert [o["status"] for o in (stop_limit, take_profit, take_limit)] == ["OPEN"] * 3
        await venue.print_trade(D(59400), D("0.01"))  # the stop-limit fires; its limit is below the bids: it fills
        assert await status_of(venue, stop_limit) == "FILLED"
        await venue.print_trade(D(60500), D("0.01"))
        assert await status_of(venue, take_profit) == "FILLED"
        assert await status_of(venue, take_limit) == "OPEN"
        await venue.print_trade(D(60600), D("0.01"))  # fires; it rests at 60,550, above the bids
        assert await status_of(venue, take_limit) == "OPEN"
        await venue.print_trade(D(60550), D(1))
        filled = await venue.app.orders.get(venue.user_id, take_limit["id"])
        assert filled["status"] == "FILLED" and filled["fills"][0]["liquidity"] == "MAKER"
        for order in (stop_limit, take_profit, take_limit):
            assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "FILLED"]

    async def test_a_stop_that_would_trigger_immediately_is_rejected_with_the_reason(self, venue: VenueHarness) -> None:
        order = await place(venue, type="STOP_MARKET", side="SELL", stop_price=fmt(MID + 100))
        assert statuses(venue, order["id"]) == ["PENDING", "REJECTED"]
        assert order["reject_reason"] == "Order would trigger immediately."
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}

    # ---- rejects --------------------------------------------------------------------------------------------------

    async def test_insufficient_funds_are_rejected_with_a_reason_for_a_person(self, venue: VenueHarness) -> None:
        order = await place(venue, quantity="0.5")  # ~30,000 USDT with 10,000 available
        assert statuses(venue, order["id"]) == ["PENDING", "REJECTED"]
        assert "insufficient balance" in (order["reject_reason"] or "").lower()
        assert order["fills"] == [] and events(venue, "FILL") == []
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}

    async def test_orders_off_the_venues_filters_are_refused_at_intake_and_nothing_is_stored(
        self, venue: VenueHarness
    ) -> None:
        for fields, field in (
            ({"quantity": "0.000001"}, "quantity"),  # below the step
            ({"type": "LIMIT", "price": "59000.001"}, "price"),  # off the tick
            ({"type": "LIMIT", "price": "100", "quantity": "0.01"}, "quantity"),  # 1 USDT: below the minimum notional
        ):
            with pytest.raises(ValidationFailed) as refused:
                await venue.app.orders.submit(venue.user_id, venue.request(**fields))
            assert refused.value.field == field and refused.value.message
        assert venue.events == []  # nothing stored: not even a PENDING order

    # ---- cancel, cancel-all --------------------------------------------------------------------------------------

    async def test_cancel_releases_the_locked_funds(self, venue: VenueHarness) -> None:
        order = await place(venue, type="LIMIT", price="58000")
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE] - 580, D(580))
        await venue.app.orders.cancel(venue.user_id, order["id"])
        await venue.settle()
        assert await status_of(venue, order) == "CANCELED"
        assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "CANCELED"]
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE], D(0))
        with pytest.raises(Conflict):
            await venue.app.orders.cancel(venue.user_id, order["id"])

    async def test_cancel_after_a_partial_fill_keeps_the_fill(self, venue: VenueHarness) -> None:
        order = await place(venue, type="LIMIT", price="59000", quantity="0.03")
        await venue.print_trade(D(59000), D("0.01"))
        await venue.app.orders.cancel(venue.user_id, order["id"])
        await venue.settle()
        canceled = await venue.app.orders.get(venue.user_id, order["id"])
        assert (canceled["status"], canceled["filled_quantity"], len(canceled["fills"])) == ("CANCELED", "0.01", 1)
        assert statuses(venue, order["id"]) == ["PENDING", "OPEN", "PARTIALLY_FILLED", "CANCELED"]
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE] - D(590), D(0))

    async def test_cancel_all_cancels_every_open_order_of_the_account_or_of_one_symbol(
        self, venue: VenueHarness
    ) -> None:
        limit = await place(venue, type="LIMIT", price="58000")
        stop = await place(venue, type="STOP_MARKET", side="SELL", stop_price="59000")
        other = await place(venue, symbol="ETHUSDT", type="LIMIT", price="2000", quantity="0.01")
        assert {o["status"] for o in (limit, stop, other)} == {"OPEN"}
        assert await venue.app.orders.cancel_all(venue.user_id, venue.account_id, SYMBOL) == 2
        await venue.settle()
        assert [await status_of(venue, o) for o in (limit, stop, other)] == ["CANCELED", "CANCELED", "OPEN"]
        assert await venue.app.orders.cancel_all(venue.user_id, venue.account_id, None) == 1
        await venue.settle()
        assert await status_of(venue, other) == "CANCELED"
        assert await venue.app.orders.list_orders(venue.user_id, status="open", account_id=venue.account_id) == []
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}

    # ---- kill switch ----------------------------------------------------------------------------------------------

    async def test_halted_cancels_every_open_order_and_refuses_new_ones(self, venue: VenueHarness) -> None:
        limit = await place(venue, type="LIMIT", price="58000")
        stop = await place(venue, type="STOP_MARKET", side="SELL", stop_price="59000")
        changed = await venue.app.trading.change(venue.user_id, venue.account_id, "HALTED")
        assert changed["canceled"] == 2
        await venue.settle()
        assert [await status_of(venue, o) for o in (limit, stop)] == ["CANCELED", "CANCELED"]
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}
        with pytest.raises(Conflict) as refused:
            await venue.app.orders.submit(venue.user_id, venue.request())
        assert refused.value.code == "TRADING_HALTED"
        await venue.app.trading.change(venue.user_id, venue.account_id, "ACTIVE")
        assert (await place(venue))["status"] == "FILLED"

    async def test_reduce_only_sells_down_to_the_position_and_refuses_the_rest(self, venue: VenueHarness) -> None:
        bought = await place(venue)  # position 0.00999: the fee is paid in BTC
        assert bought["status"] == "FILLED"
        await venue.app.trading.change(venue.user_id, venue.account_id, "REDUCE_ONLY")
        for fields in ({"side": "BUY"}, {"side": "SELL", "quantity": "0.01"}):
            with pytest.raises(Conflict) as refused:
                await venue.app.orders.submit(venue.user_id, venue.request(**fields))
            assert refused.value.code == "REDUCE_ONLY"
        assert (await place(venue, side="SELL", quantity="0.00999"))["status"] == "FILLED"
        positions = await venue.app.portfolio.positions(venue.user_id, venue.account_id)
        assert [p["quantity"] for p in positions if p["symbol"] == SYMBOL] == ["0"]
        await venue.app.trading.change(venue.user_id, venue.account_id, "ACTIVE")

    async def test_an_order_queued_before_reduce_only_is_rejected_by_the_engine_after_a_restart(
        self, venue: VenueHarness
    ) -> None:
        """The state is stored and loaded at start; the engine checks orders that intake accepted before it."""
        accepted = await venue.accept_without_executing()
        await venue.app.trading.change(venue.user_id, venue.account_id, "REDUCE_ONLY")
        await venue.restart()
        order = await venue.app.orders.get(venue.user_id, accepted["id"])
        assert order["status"] == "REJECTED" and order["fills"] == []
        assert "reduce-only" in order["reject_reason"]
        await venue.app.trading.change(venue.user_id, venue.account_id, "ACTIVE")

    # ---- brackets (OCO exits) ------------------------------------------------------------------------------------

    async def test_bracket_exits_are_an_oco_pair_sized_by_what_the_entry_received(self, venue: VenueHarness) -> None:
        entry = await place(venue, take_profit_price="61000", stop_loss_price="59000")
        assert entry["status"] == "FILLED"
        take_profit, stop_loss = await exits_of(venue, entry)
        # One rule: the filled quantity, less a fee paid in the base asset, floored to the step (0.01 - 0.00001).
        assert (take_profit["type"], take_profit["side"], take_profit["price"], take_profit["quantity"]) == (
            "LIMIT",
            "SELL",
            "61000",
            "0.00999",
        )
        assert (stop_loss["type"], stop_loss["side"], stop_loss["stop_price"], stop_loss["quantity"]) == (
            "STOP_MARKET",
            "SELL",
            "59000",
            "0.00999",
        )
        assert take_profit["status"] == stop_loss["status"] == "OPEN"
        # One reservation for the pair.
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE], D("0.00999"))

    async def test_a_sell_brackets_exits_cover_the_whole_quantity(self, venue: VenueHarness) -> None:
        entry = await place(venue, side="SELL", take_profit_price="59000", stop_loss_price="61000")
        take_profit, stop_loss = await exits_of(venue, entry)
        assert [(leg["side"], leg["quantity"]) for leg in (take_profit, stop_loss)] == [("BUY", "0.01")] * 2

    async def test_one_exit_filling_expires_the_other(self, venue: VenueHarness) -> None:
        entry = await place(venue, take_profit_price="61000", stop_loss_price="59000")
        take_profit, stop_loss = await exits_of(venue, entry)
        await venue.print_trade(D(61000), D(1))
        assert await status_of(venue, take_profit) == "FILLED"
        assert statuses(venue, stop_loss["id"]) == ["PENDING", "OPEN", "EXPIRED"]
        assert (await balances(venue, BASE))[1] == 0

    async def test_canceling_one_exit_cancels_both(self, venue: VenueHarness) -> None:
        entry = await place(venue, take_profit_price="61000", stop_loss_price="59000")
        take_profit, stop_loss = await exits_of(venue, entry)
        await venue.app.orders.cancel(venue.user_id, take_profit["id"])
        await venue.settle()
        assert [await status_of(venue, leg) for leg in (take_profit, stop_loss)] == ["CANCELED", "CANCELED"]
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] + D("0.00999"), D(0))

    async def test_exits_the_venue_refuses_are_both_rejected_with_the_reason(self, venue: VenueHarness) -> None:
        entry = await place(venue, type="LIMIT", price="59000", take_profit_price="61000", stop_loss_price="58990")
        await venue.print_trade(D(58900), D(1))  # fills the entry; the last price is already past the stop-loss
        assert await status_of(venue, entry) == "FILLED"
        legs = await exits_of(venue, entry)
        assert [(leg["status"], leg["reject_reason"]) for leg in legs] == [
            ("REJECTED", "Order would trigger immediately.")
        ] * 2
        assert (await balances(venue, BASE))[1] == 0

    async def test_exits_below_the_minimum_notional_are_not_placed_and_the_user_is_told(
        self, venue: VenueHarness
    ) -> None:
        # 0.00009 BTC fills; 0.00008991 arrives, 0.00008 after flooring: 0.00008 x 59,000 = 4.72 < 5 USDT minimum.
        entry = await place(venue, quantity="0.00009", take_profit_price="61000", stop_loss_price="59000")
        assert entry["status"] == "FILLED"
        orders = await venue.app.orders.list_orders(venue.user_id, account_id=venue.account_id)
        assert [o for o in orders if o["parent_id"] == entry["id"]] == []
        assert [e.data["code"] for e in events(venue, "NOTICE")] == ["BRACKET_SKIPPED"]

    # ---- stand-alone OCO ---------------------------------------------------------------------------------------------

    async def test_standalone_oco_places_both_legs_with_one_reservation(self, venue: VenueHarness) -> None:
        take_profit, stop_loss = await oco(venue)
        assert take_profit["oco_group"] == stop_loss["oco_group"] is not None
        assert [(o["type"], o["side"], o["status"], o["parent_id"]) for o in (take_profit, stop_loss)] == [
            ("LIMIT", "SELL", "OPEN", None),
            ("STOP_MARKET", "SELL", "OPEN", None),
        ]
        assert (take_profit["price"], stop_loss["stop_price"]) == ("61000", "59000")
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.01"), D("0.01"))

    async def test_standalone_oco_take_profit_filling_expires_the_stop(self, venue: VenueHarness) -> None:
        take_profit, stop_loss = await oco(venue)
        await venue.print_trade(D(61000), D(1))
        assert await status_of(venue, take_profit) == "FILLED"
        assert statuses(venue, stop_loss["id"]) == ["PENDING", "OPEN", "EXPIRED"]
        assert (await balances(venue, BASE))[1] == 0

    async def test_standalone_oco_stop_limit_leg_triggers_and_expires_the_limit(self, venue: VenueHarness) -> None:
        take_profit, stop_loss = await oco(venue, stop_limit_price="58900")
        assert (stop_loss["type"], stop_loss["price"], stop_loss["stop_price"]) == ("STOP_LIMIT", "58900", "59000")
        await venue.print_trade(D(59000), D("0.01"))
        filled = await venue.app.orders.get(venue.user_id, stop_loss["id"])
        assert (filled["status"], filled["fills"][0]["price"]) == ("FILLED", fmt(BEST_BID))
        assert await status_of(venue, take_profit) == "EXPIRED"

    async def test_standalone_oco_the_venue_refuses_is_rejected_whole(self, venue: VenueHarness) -> None:
        legs = await oco(venue, price="62000", stop_price=fmt(MID + 100))  # the stop is above the last price
        assert [(leg["status"], leg["reject_reason"]) for leg in legs] == [
            ("REJECTED", "Order would trigger immediately.")
        ] * 2
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}

    async def test_a_standalone_oco_accepted_before_a_restart_is_placed_once_after_it(
        self, venue: VenueHarness
    ) -> None:
        accepted = await venue.crash_after(lambda app: place_oco(app.orders, venue.user_id, oco_request(venue)))
        await venue.settle()
        legs = [await venue.app.orders.get(venue.user_id, leg["id"]) for leg in accepted]
        assert [leg["status"] for leg in legs] == ["OPEN", "OPEN"]
        assert [statuses(venue, leg["id"]) for leg in legs] == [["PENDING", "OPEN"]] * 2
        assert await balances(venue, BASE) == (STARTING_BALANCES[BASE] - D("0.01"), D("0.01"))
        await venue.print_trade(D(59000), D("0.01"))  # the stop-loss fires once, the take-profit expires
        assert [await status_of(venue, leg) for leg in legs] == ["EXPIRED", "FILLED"]

    async def test_an_oco_queued_before_reduce_only_is_rejected_whole_by_the_engine(self, venue: VenueHarness) -> None:
        async def place_then_reduce_only(app: Services) -> list[dict[str, Any]]:
            legs = await place_oco(
                app.orders, venue.user_id, oco_request(venue, side="BUY", price="59000", stop_price="61000")
            )
            await app.trading.change(venue.user_id, venue.account_id, "REDUCE_ONLY")  # a BUY pair grows a position
            return legs

        accepted = await venue.crash_after(place_then_reduce_only)
        legs = [await venue.app.orders.get(venue.user_id, leg["id"]) for leg in accepted]
        assert [(leg["status"], leg["fills"]) for leg in legs] == [("REJECTED", [])] * 2
        assert await balances(venue) == {asset: (amount, D(0)) for asset, amount in STARTING_BALANCES.items()}
        await venue.app.trading.change(venue.user_id, venue.account_id, "ACTIVE")

    async def test_standalone_oco_refusals_at_intake(self, venue: VenueHarness) -> None:
        for fields, field in (
            ({"price": "59000", "stop_price": "61000"}, "price"),  # a SELL's take-profit below its stop
            ({"side": "BUY", "price": "61000", "stop_price": "59000"}, "price"),
            ({"stop_limit_price": "58900.001"}, "stop_limit_price"),
            ({"quantity": "0.000001"}, "quantity"),
        ):
            with pytest.raises(ValidationFailed) as refused:
                await place_oco(venue.app.orders, venue.user_id, oco_request(venue, **fields))
            assert refused.value.field == field
        assert venue.events == []

    # ---- events ------------------------------------------------------------------------------------------------

    async def test_events_carry_the_same_payloads_on_every_venue(self, venue: VenueHarness) -> None:
        order = await place(venue)
        seqs = [e.seq for e in venue.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert {e.type for e in venue.events} == {"ORDER_UPDATE", "FILL", "BALANCE_UPDATE"}
        for event in venue.events:
            if event.type == "ORDER_UPDATE":
                assert set(event.data) == ORDER_KEYS
            elif event.type == "FILL":
                assert set(event.data) == FILL_KEYS
            else:
                assert set(event.data) == {"account_id", "balances"}
                assert event.data["account_id"] == venue.account_id
                assert all(set(row) == BALANCE_KEYS for row in event.data["balances"])
        assert events(venue, "ORDER_UPDATE")[-1].data == {k: v for k, v in order.items() if k != "fills"}

    async def test_the_last_balance_update_is_what_a_balances_read_returns(self, venue: VenueHarness) -> None:
        await place(venue, side="SELL", quantity=fmt(STARTING_BALANCES[BASE]))  # every BTC: a zero balance
        [*_, last] = events(venue, "BALANCE_UPDATE")
        read = await venue.app.portfolio.balances(venue.user_id, venue.account_id)
        expected = [{"asset": b.asset, "free": fmt(b.free), "locked": fmt(b.locked)} for b in read]
        assert sorted(last.data["balances"], key=lambda b: b["asset"]) == sorted(expected, key=lambda b: b["asset"])

    # ---- restart recovery -----------------------------------------------------------------------------------------

    async def test_an_order_accepted_before_a_restart_is_executed_exactly_once_after_it(
        self, venue: VenueHarness
    ) -> None:
        accepted = await venue.crash_after_accepting()
        assert accepted["status"] == "PENDING"
        await venue.settle()
        order = await venue.app.orders.get(venue.user_id, accepted["id"])
        assert (order["status"], order["filled_quantity"], len(order["fills"])) == ("FILLED", "0.01", 1)
        assert statuses(venue, order["id"]) == ["PENDING", "FILLED"]
        await venue.restart()
        again = await venue.app.orders.get(venue.user_id, accepted["id"])
        assert (again["status"], len(again["fills"])) == ("FILLED", 1)
        assert await balances(venue, QUOTE) == (STARTING_BALANCES[QUOTE] - BEST_ASK * D("0.01"), D(0))

    async def test_open_orders_survive_a_restart_and_can_be_canceled_or_filled(self, venue: VenueHarness) -> None:
        limit = await place(venue, type="LIMIT", price="58000")
        stop = await place(venue, type="STOP_MARKET", side="SELL", stop_price="58995")
        partial = await place(venue, type="LIMIT", price="59000", quantity="0.03")
        await venue.print_trade(D(59000), D("0.01"))
        await venue.restart()
        assert [await status_of(venue, o) for o in (limit, stop, partial)] == ["OPEN", "OPEN", "PARTIALLY_FILLED"]
        await venue.app.orders.cancel(venue.user_id, limit["id"])
        await venue.settle()
        assert await status_of(venue, limit) == "CANCELED"
        await venue.print_trade(D(58990), D(1))  # through the partial's price and past the stop
        assert [await status_of(venue, o) for o in (stop, partial)] == ["FILLED", "FILLED"]
        filled = await venue.app.orders.get(venue.user_id, partial["id"])
        assert [f["quantity"] for f in filled["fills"]] == ["0.01", "0.02"]  # the first fill is not recorded twice
        assert await venue.app.orders.list_orders(venue.user_id, status="open", account_id=venue.account_id) == []


# ---- helpers (venue-neutral) --------------------------------------------------------------------------------------


async def place(venue: VenueHarness, **fields: Any) -> dict[str, Any]:
    """Submit through intake, wait until execution settled, return the order with its fills."""
    submitted = await venue.app.orders.submit(venue.user_id, venue.request(**fields))
    assert submitted.created and submitted.order["status"] == "PENDING"
    await venue.settle()
    return await venue.app.orders.get(venue.user_id, submitted.order["id"])


async def modify(venue: VenueHarness, order: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Modify/replace through intake, wait until execution settled, return the replacement with its fills."""
    submitted = await venue.app.orders.replace(venue.user_id, order["id"], ReplaceRequest(**fields))
    assert submitted.created and submitted.order["status"] == "PENDING"
    await venue.settle()
    return await venue.app.orders.get(venue.user_id, submitted.order["id"])


def oco_request(venue: VenueHarness, **fields: Any) -> OcoRequest:
    values = {"symbol": SYMBOL, "side": "SELL", "quantity": "0.01", "price": "61000", "stop_price": "59000", **fields}
    return OcoRequest(account_id=venue.account_id, **values)


async def oco(venue: VenueHarness, **fields: Any) -> list[dict[str, Any]]:
    """A stand-alone OCO through intake, settled; its legs, take-profit first."""
    legs = await place_oco(venue.app.orders, venue.user_id, oco_request(venue, **fields))
    assert [leg["status"] for leg in legs] == ["PENDING", "PENDING"]
    await venue.settle()
    return [await venue.app.orders.get(venue.user_id, leg["id"]) for leg in legs]


async def status_of(venue: VenueHarness, order: dict[str, Any]) -> str:
    return str((await venue.app.orders.get(venue.user_id, order["id"]))["status"])


async def exits_of(venue: VenueHarness, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The bracket's exit legs: take-profit (LIMIT) first, then stop-loss (STOP_MARKET)."""
    orders = await venue.app.orders.list_orders(venue.user_id, account_id=venue.account_id)
    legs = sorted((o for o in orders if o["parent_id"] == entry["id"]), key=lambda o: o["type"])
    assert [leg["type"] for leg in legs] == ["LIMIT", "STOP_MARKET"]
    return legs


def events(venue: VenueHarness, kind: str) -> list[UserEvent]:
    return [e for e in venue.events if e.type == kind]


def statuses(venue: VenueHarness, order_id: str) -> list[str]:
    """The statuses an order went through, from its ORDER_UPDATE events (repeats of one status, e.g. one event
    per partial fill, counted once). Every contract check of a sequence also checks it against the state machine."""
    seen: list[str] = []
    for event in events(venue, "ORDER_UPDATE"):
        if event.data["id"] == order_id and (not seen or seen[-1] != event.data["status"]):
            seen.append(event.data["status"])
    assert_legal(seen)
    return seen


def assert_legal(sequence: list[str]) -> None:
    assert sequence and sequence[0] == "PENDING", sequence
    for before, after in itertools.pairwise(sequence):
        assert OrderStatus(after) in ALLOWED_TRANSITIONS[OrderStatus(before)], sequence


async def balances(venue: VenueHarness, asset: str | None = None) -> Any:
    """{asset: (free, locked)} of the harness's account (zero rows left out), or one asset's (free, locked)."""
    rows = await venue.app.portfolio.balances(venue.user_id, venue.account_id)
    held = {b.asset: (b.free, b.locked) for b in rows if b.free or b.locked}
    return held if asset is None else held.get(asset, (D(0), D(0)))


def fmt(value: Decimal) -> str:
    """Decimal as the API writes it (no exponent, no trailing zeros)."""
    return f"{value.normalize():f}"
