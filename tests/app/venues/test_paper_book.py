"""TakerBook: a consumable view of one depth snapshot, shared by the takers of one matcher call."""

from __future__ import annotations

from decimal import Decimal as D

from app.domain import Side
from app.market.models import Depth
from app.venues.paper_book import TakerBook, crosses, walk_quantity

DEPTH = Depth(
    "BTCUSDT",
    bids=((D("99"), D("1")), (D("98"), D("2"))),
    asks=((D("101"), D("1")), (D("102"), D("2")), (D("103"), D("3"))),
    ts=1,
)


def test_takers_of_one_book_share_its_liquidity_and_the_snapshot_stays_as_it_was() -> None:
    book = TakerBook(DEPTH, "BTCUSDT")
    first = walk_quantity(book, Side.BUY, D("1.5"), D("0.1"))
    assert first == [(D("101"), D("1")), (D("102"), D("0.5"))]
    book.consume(Side.BUY, first)
    second = walk_quantity(book, Side.BUY, D("2"), D("0.1"))
    assert second == [(D("102"), D("1.5")), (D("103"), D("0.5"))]
    book.consume(Side.BUY, second)
    assert list(book.levels(Side.BUY)) == [(D("101"), D("0")), (D("102"), D("0")), (D("103"), D("2.5"))]
    assert list(book.levels(Side.SELL)) == [(D("99"), D("1")), (D("98"), D("2"))]  # the other side untouched
    assert DEPTH.asks == ((D("101"), D("1")), (D("102"), D("2")), (D("103"), D("3")))
    assert TakerBook(DEPTH, "BTCUSDT").levels(Side.BUY) == DEPTH.asks  # a new view starts from the snapshot


def test_consuming_nothing_changes_nothing() -> None:
    book = TakerBook(DEPTH, "BTCUSDT")
    book.consume(Side.SELL, [])
    assert book.levels(Side.SELL) == DEPTH.bids


def test_empty_levels_of_a_snapshot_are_left_out() -> None:
    depth = Depth("BTCUSDT", bids=(), asks=((D("101"), D("0")), (D("102"), D("2"))), ts=1)
    book = TakerBook(depth, "BTCUSDT")
    assert list(book.levels(Side.BUY)) == [(D("102"), D("2"))]
    assert crosses(book, Side.BUY, D("102")) and not crosses(book, Side.BUY, D("101.5"))
    assert not book.has_liquidity(Side.SELL)


def test_a_book_taken_whole_has_no_liquidity_left() -> None:
    depth = Depth("BTCUSDT", bids=((D("99"), D("1")),), asks=(), ts=1)
    book = TakerBook(depth, "BTCUSDT")
    book.consume(Side.SELL, walk_quantity(book, Side.SELL, D("5"), D("0.1")))
    assert not book.has_liquidity(Side.SELL)


def test_another_symbols_snapshot_is_no_liquidity() -> None:
    book = TakerBook(DEPTH, "ETHUSDT")
    assert not book.has_liquidity(Side.BUY) and not book.has_liquidity(Side.SELL)
