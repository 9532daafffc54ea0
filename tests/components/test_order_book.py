"""The order book panel: its markup is built once per flush and shared by every page of the symbol, and new market
data is painted (never a stale copy)."""

from __future__ import annotations

from decimal import Decimal

from nicegui.testing import User

from app.market.models import Depth, Trade
from components.order_book import OrderBook
from tests.components.helpers import register_in_browser, services


def _depth(best_bid: str) -> Depth:
    bid = Decimal(best_bid)
    bids = tuple((bid - i, Decimal("0.5")) for i in range(12))
    asks = tuple((bid + 1 + i, Decimal("0.25")) for i in range(12))
    return Depth("BTCUSDT", bids, asks, 1)


async def test_pages_of_a_symbol_share_one_build_of_the_markup_per_flush(user: User) -> None:
    await register_in_browser(user)
    assert user.client is not None
    rules = services().rules["BTCUSDT"]
    with user.client:
        first, second = OrderBook(rules, print), OrderBook(rules, print)
    depth, trades = _depth("90000"), [Trade("BTCUSDT", Decimal("90000.5"), Decimal("0.01"), "BUY", 1_700_000_000_000)]
    first.update(depth, trades)
    second.update(depth, trades)
    for panel in ("asks", "bids", "trades"):  # the very same string: the second page did not build its own
        assert getattr(first, panel).content is getattr(second, panel).content
    assert first.bids.content.count("data-price") == 10 and 'data-price="90000"' in first.bids.content
    assert 'data-price="90000.5"' in first.trades.content
    assert first.spread.text == second.spread.text == "Spread 1.00 (0.001%)"

    newer = _depth("91000")  # the next flush: new objects, new markup for every page
    second.update(newer, trades)
    first.update(newer, trades)
    assert 'data-price="91000"' in first.bids.content and first.bids.content is second.bids.content
    first.update(None, [])  # no depth yet from a feed: what is shown stays, the trades empty out
    assert 'data-price="91000"' in first.bids.content and first.trades.content == ""
