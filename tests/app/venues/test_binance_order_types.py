"""Binance wire formats of the order types beyond market/limit/stop: modify/replace (order/cancelReplace and its
three answers), trailing stops (STOP_LOSS + trailingDelta), against the fake exchange. Behaviour shared with the
paper venue is in the contract suite (tests/app/venues/contract/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from app.domain import OrderStatus
from app.errors import VenueRejected
from app.ids import new_id, replace_cancel_id
from app.venues.base import OrderSpec, ReplaceSpec
from app.venues.binance import mapping
from app.venues.binance_testnet import BinanceTestnetVenue
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.app_venues import venue_on_fake

BTC = "BTCUSDT"
D = Decimal
SIGNING = ("timestamp", "recvWindow", "signature")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        server.set_book(BTC, bids=[("59990", "1")], asks=[("60010", "1")])
        yield server


@pytest.fixture
async def venue(fake: FakeBinance) -> AsyncIterator[BinanceTestnetVenue]:
    adapter = venue_on_fake(fake)
    await adapter.load_rules()
    yield adapter
    await adapter.close()


def limit(cid: str, price: str, type_: str = "LIMIT") -> OrderSpec:
    tif = "GTC" if type_ == "LIMIT" else None
    return OrderSpec(cid, BTC, "BUY", type_, D("0.01"), price=D(price), time_in_force=tif)


def replace_posts(fake: FakeBinance) -> list[dict[str, str]]:
    return [
        {k: v for k, v in r.params.items() if k not in SIGNING}
        for r in fake.requests
        if r.path == "/api/v3/order/cancelReplace"
    ]


async def test_replace_is_one_cancel_replace_with_our_ids_and_the_old_order_ends_replaced(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    await venue.submit(limit("tw-old", "59000"))
    new_id_ = new_id()
    outcome = await venue.replace(ReplaceSpec("tw-old", replace_cancel_id(new_id_), limit("tw-new", "59100")))
    assert replace_posts(fake) == [
        {
            "symbol": BTC,
            "side": "BUY",
            "type": "LIMIT",
            "newClientOrderId": "tw-new",
            "newOrderRespType": "FULL",
            "price": "59100",
            "quantity": "0.01",
            "timeInForce": "GTC",
            "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrigClientOrderId": "tw-old",
            "cancelNewClientOrderId": replace_cancel_id(new_id_),
        }
    ]
    assert outcome.canceled is not None and outcome.new is not None
    assert (outcome.canceled.client_order_id, outcome.canceled.status) == ("tw-old", OrderStatus.REPLACED)
    assert (outcome.new.client_order_id, outcome.new.status, outcome.new.price) == (
        "tw-new",
        OrderStatus.OPEN,
        D(59100),
    )
    assert (outcome.cancel_error, outcome.new_error) == (None, None)


async def test_a_new_order_refused_after_the_cancel_is_binances_409_partial_failure(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    await venue.submit(limit("tw-old", "59000", "LIMIT_MAKER"))
    spec = ReplaceSpec("tw-old", replace_cancel_id(new_id()), limit("tw-new", "60010", "LIMIT_MAKER"))
    outcome = await venue.replace(spec)  # post-only at the ask: would take
    assert [r.status for r in fake.requests if r.path == "/api/v3/order/cancelReplace"] == [409]
    assert outcome.canceled is not None and outcome.canceled.status is OrderStatus.REPLACED
    assert (outcome.new, outcome.new_error) == (None, "Order would immediately match and take.")


async def test_a_cancel_that_fails_places_nothing_and_is_binances_400(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    outcome = await venue.replace(ReplaceSpec("tw-nothing", replace_cancel_id(new_id()), limit("tw-new", "59100")))
    assert [r.status for r in fake.requests if r.path == "/api/v3/order/cancelReplace"] == [400]
    assert (outcome.canceled, outcome.cancel_error, outcome.new, outcome.new_error) == (
        None,
        "Unknown order sent.",
        None,
        None,
    )
    assert fake.engine.orders == {}


async def test_a_replacement_off_the_filters_is_refused_before_anything_is_sent(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    with pytest.raises(VenueRejected, match="tick size"):
        await venue.replace(ReplaceSpec("tw-old", replace_cancel_id(new_id()), limit("tw-new", "59100.001")))
    assert replace_posts(fake) == []


def test_only_our_replace_cancel_ids_make_a_cancel_replaced() -> None:
    ours = replace_cancel_id(new_id())
    assert mapping.ended_status("CANCELED", ours) is OrderStatus.REPLACED
    assert mapping.ended_status("CANCELED", "trXbLo3vTAQcjha43lAZhZ") is OrderStatus.CANCELED  # Binance's own id
    assert mapping.ended_status("CANCELED", None) is OrderStatus.CANCELED
    assert mapping.ended_status("FILLED", ours) is OrderStatus.FILLED


async def test_a_trailing_stop_is_a_stop_loss_with_trailing_delta_and_no_stop_price(
    fake: FakeBinance, venue: BinanceTestnetVenue
) -> None:
    trailing = OrderSpec("tw-trail", BTC, "SELL", "TRAILING_STOP_MARKET", D("0.01"), trailing_delta_bps=250)
    report = await venue.submit(trailing)
    assert report.status is OrderStatus.OPEN
    [sent] = [
        {k: v for k, v in r.params.items() if k not in SIGNING} for r in fake.requests if r.path == "/api/v3/order"
    ]
    assert (sent["type"], sent["trailingDelta"], "stopPrice" in sent) == ("STOP_LOSS", "250", False)
    with pytest.raises(VenueRejected, match="TRAILING_DELTA"):
        await venue.submit(OrderSpec("tw-x", BTC, "SELL", "TRAILING_STOP_MARKET", D("0.01"), trailing_delta_bps=5))
    assert len([r for r in fake.requests if r.path == "/api/v3/order"]) == 1  # refused before sending
