"""Market models: a depth snapshot holds only levels with something on them."""

from __future__ import annotations

from decimal import Decimal as D

from app.market.models import Depth


def test_a_snapshot_drops_empty_levels_and_keeps_the_order() -> None:
    depth = Depth(
        "BTCUSDT",
        bids=((D("99"), D("1")), (D("98"), D("0")), (D("97"), D("-1")), (D("96"), D("2"))),
        asks=((D("101"), D("0")), (D("102"), D("3"))),
        ts=5,
    )
    assert depth.bids == ((D("99"), D("1")), (D("96"), D("2")))
    assert depth.asks == ((D("102"), D("3")),)


def test_a_clean_snapshot_is_kept_as_given() -> None:
    bids = ((D("99"), D("1")),)
    assert Depth("BTCUSDT", bids=bids, asks=(), ts=5).bids is bids
