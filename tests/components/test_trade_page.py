"""The trading screen, driven through NiceGUI's simulated user: placing, seeing, canceling and validating orders."""

from __future__ import annotations

from decimal import Decimal

from nicegui import ElementFilter, app, ui
from nicegui.testing import User

from app.ids import now_ms
from app.market.models import Trade
from tests.components.helpers import (
    OutboxSpy,
    choose,
    element,
    grid_rows,
    log_out,
    register_in_browser,
    services,
    user_id_of,
    wait_for,
)


async def test_home_redirects_to_the_first_symbol(user: User) -> None:
    await register_in_browser(user)
    await user.open("/")
    await user.should_see("BTCUSDT")
    await user.should_see(marker="chart")
    await user.should_see(marker="environment")
    await user.should_see("PAPER")
    await user.should_see("Available 10,000.00 USDT")


async def test_unknown_symbol_shows_a_friendly_page_with_links(user: User) -> None:
    await register_in_browser(user)
    await user.open("/trade/NOPEUSDT")
    await user.should_see("There is no market NOPEUSDT here.")
    await user.should_see("ETHUSDT")
    user.find("ETHUSDT").click()
    await user.should_see(marker="ticket")


async def test_market_order_fills_and_shows_in_history_trades_positions(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Market")
    user.find(marker="ticket-quantity").type("0.01")
    user.find(marker="submit-order").click()
    user.find(marker="tab-history").click()
    await user.should_see(content="FILLED", marker="order-history", retries=50)
    assert user.notify.contains("Order placed: BUY 0.01 BTCUSDT (PENDING)")
    user.find(marker="tab-fills").click()
    await user.should_see(content="TAKER", marker="fills", retries=50)
    user.find(marker="tab-positions").click()
    await user.should_see(content="BTCUSDT", marker="positions", retries=50)
    position = grid_rows(user, "positions")[0]
    assert Decimal(position["quantity"]) > 0
    assert position["avg_entry_price"]
    user.find(marker="tab-balances").click()
    await user.should_see(content="USDT", marker="balances")
    assert grid_rows(user, "open-orders") == []


async def test_limit_order_rests_and_can_be_canceled(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.001")
    user.find(marker="submit-order").click()
    await user.should_see(content="OPEN", marker="open-orders", retries=50)
    await user.should_see("Open orders (1)")
    (row,) = grid_rows(user, "open-orders")
    assert (row["side"], row["price"], row["quantity"]) == ("BUY", "50,000.00", "0.001")
    user.find(marker="open-orders").trigger("cellClicked", {"colId": "action", "data": {"id": row["id"]}})
    user.find(marker="tab-history").click()
    await user.should_see(content="CANCELED", marker="order-history", retries=50)
    await user.should_see("Open orders (0)")


async def test_an_open_order_is_modified_from_the_blotter(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.001")
    user.find(marker="submit-order").click()
    await user.should_see(content="OPEN", marker="open-orders", retries=50)
    (row,) = grid_rows(user, "open-orders")
    user.find(marker="open-orders").trigger("cellClicked", {"colId": "edit", "data": {"id": row["id"]}})
    await user.should_see(marker="edit-order")
    user.find(marker="edit-price").clear().type("49000")
    user.find(marker="edit-save").click()
    await user.should_see(content="49,000.00", marker="open-orders", retries=50)
    assert user.notify.contains("Modify requested: BUY 0.001 BTCUSDT")
    (new,) = grid_rows(user, "open-orders")
    assert (new["replaces"], new["quantity"]) == (row["id"], "0.001")
    user.find(marker="tab-history").click()
    await user.should_see(content="REPLACED", marker="order-history", retries=50)


async def test_cancel_all_empties_open_orders(user: User) -> None:
    await register_in_browser(user)
    for price in ("50000", "51000"):
        user.find(marker="ticket-price").clear().type(price)
        user.find(marker="ticket-quantity").clear().type("0.001")
        user.find(marker="submit-order").click()
        await user.should_see(content=f"{price[:2]},{price[2:]}.00", marker="open-orders", retries=50)
    user.find(marker="cancel-all").click()
    await user.should_see("Canceling 2 open orders", retries=30)
    await user.should_see("Open orders (0)", retries=50)


async def test_validation_messages_are_the_api_messages(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="ticket-price").clear().type("50000.001")
    user.find(marker="ticket-quantity").type("0.001")
    await user.should_see("price must be a multiple of the tick size 0.01")
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").clear().type("0.000001")
    await user.should_see("quantity must be a multiple of the step size 0.00001")
    user.find(marker="ticket-quantity").clear().type("0.00001")
    await user.should_see("order value 0.5 USDT is below the minimum 5 USDT")
    user.find(marker="submit-order").click()
    await user.should_see("order value 0.5 USDT is below the minimum 5 USDT")
    assert await services().orders.list_orders(user_id_of(user)) == []


async def test_insufficient_funds_is_rejected_with_the_reason(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Market")
    user.find(marker="side-sell").click()
    user.find(marker="ticket-quantity").type("1")
    user.find(marker="submit-order").click()
    user.find(marker="tab-history").click()
    await user.should_see(content="REJECTED", marker="order-history", retries=50)
    assert any(row["reject_reason"] for row in grid_rows(user, "order-history"))


async def test_double_submit_places_one_order(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.001")
    user.find(marker="submit-order").click()
    user.find(marker="submit-order").click()
    await user.should_see(content="OPEN", marker="open-orders", retries=50)
    orders = await services().orders.list_orders(user_id_of(user))
    assert len(orders) == 1


async def test_clicking_a_book_level_fills_the_ticket_price(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="book").trigger("click", "12345.67")  # the panel's listener (its rows repaint)
    price = next(iter(user.find(marker="ticket-price").elements))
    assert price.value == "12345.67"  # type: ignore[attr-defined]


async def test_live_price_reaches_the_page(user: User) -> None:
    await register_in_browser(user)
    services().market.apply_trade(Trade("BTCUSDT", Decimal("91234.56"), Decimal("0.1"), "BUY", now_ms()))
    await user.should_see("91,234.56", retries=30)


async def test_users_never_see_each_others_orders(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.00777")
    user.find(marker="submit-order").click()
    await user.should_see(content="0.00777", marker="open-orders", retries=50)
    await log_out(user)
    await register_in_browser(user)  # a second person in the same browser
    await user.should_see("Open orders (0)")
    await user.should_not_see(content="0.00777", marker="open-orders")
    assert grid_rows(user, "open-orders") == grid_rows(user, "order-history") == grid_rows(user, "fills") == []


def _key(user: User, key: str) -> None:
    """A key press as the browser's keyboard listener reports it."""
    args = {"action": "keydown", "repeat": False, "altKey": False, "ctrlKey": False, "metaKey": False}
    user.find(marker="keyboard").trigger("key", {**args, "shiftKey": False, "key": key, "code": "", "location": 0})


async def test_keyboard_shortcuts_and_their_help(user: User) -> None:
    await register_in_browser(user)
    spy = OutboxSpy(user)
    _key(user, "s")
    await user.should_see("Sell BTC")
    await user.should_see("Available 0.00000 BTC")
    _key(user, "b")
    await user.should_see("Buy BTC")
    user.find(marker="ticket-quantity").type("0.002")
    _key(user, "Escape")
    assert element(user, "ticket-quantity").value == ""
    _key(user, "f")
    quantity = element(user, "ticket-quantity")
    await wait_for(lambda: spy.calls(f'runMethod({quantity.id}, "focus"'), "the amount field to get focus")
    dialog = element(user, "shortcuts-help").parent_slot.parent
    assert not dialog.value
    _key(user, "?")
    assert dialog.value
    dialog.close()
    user.find(marker="shortcuts").click()  # the button opens the same help
    assert dialog.value
    await user.should_see("Focus the amount field")


async def test_notifications_for_partial_fill_fill_and_cancel(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.01")
    user.find(marker="submit-order").click()
    await user.should_see(content="OPEN", marker="open-orders", retries=50)
    market = services().market
    market.apply_trade(Trade("BTCUSDT", Decimal("50000"), Decimal("0.004"), "SELL", now_ms()))  # at the level
    await user.should_see(content="PARTIALLY_FILLED", marker="open-orders", retries=50)
    assert user.notify.contains("Partially filled: 0.004 of BUY 0.01 BTCUSDT")
    user.find(marker="cancel-all").click()
    await user.should_see("Open orders (0)", retries=50)
    await wait_for(lambda: user.notify.contains("Canceled: BUY 0.01 BTCUSDT"), "the cancel notification")
    choose(user, "ticket-type", "Market")
    user.find(marker="ticket-quantity").clear().type("0.001")
    user.find(marker="submit-order").click()
    await wait_for(lambda: any(m.startswith("Filled: BUY 0.001 BTCUSDT @ ") for m in user.notify.messages), "fill")
    filled = next(m for m in user.notify.messages if m.startswith("Filled: BUY 0.001"))
    assert len(filled.rsplit(".", 1)[1]) == 2  # the average price on the tick grid, not 90098.6686686…


async def test_rejection_is_notified_with_the_reason(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Market")
    user.find(marker="side-sell").click()
    user.find(marker="ticket-quantity").type("1")
    user.find(marker="submit-order").click()
    await wait_for(lambda: any(m.startswith("Rejected: SELL 1 BTCUSDT — ") for m in user.notify.messages), "reject")


async def test_switching_symbol_keeps_the_page_and_changes_the_url(user: User) -> None:
    await register_in_browser(user)
    client = user.client
    spy = OutboxSpy(user)
    choose(user, "symbol-switcher", "ETHUSDT")
    await user.should_see("Buy ETH", retries=30)
    assert user.client is client  # the same page: no reload
    await wait_for(lambda: spy.calls('history.pushState({}, "", "/trade/ETHUSDT")'), "the URL to follow")
    user.find(marker="ticket-price").clear().type("1000")
    user.find(marker="ticket-quantity").type("0.01")
    user.find(marker="submit-order").click()
    await user.should_see(content="ETHUSDT", marker="open-orders", retries=50)
    assert grid_rows(user, "open-orders")[0]["symbol"] == "ETHUSDT"


async def test_ticket_fields_follow_the_type_and_total_and_percent_size_the_order(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Stop-limit")
    await user.should_see(marker="ticket-stop")
    await user.should_see(marker="ticket-price")
    choose(user, "ticket-type", "Market")
    await user.should_not_see(marker="ticket-stop")
    await user.should_not_see(marker="ticket-price")
    await user.should_not_see(marker="ticket-tif")
    choose(user, "ticket-type", "Limit")
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-total").type("100")
    assert element(user, "ticket-quantity").value == "0.002"
    element(user, "ticket-percent").set_value(50)
    assert element(user, "ticket-quantity").value == "0.0999"  # half of 10,000 USDT at 50,000 incl. the fee
    await user.should_see("Est. value 4,995.00 USDT")
    user.find(marker="ticket-bracket").click()
    user.find(marker="ticket-tp").type("49000")
    await user.should_see("take_profit_price")  # the API's bracket message, before submitting


async def test_post_only_and_trailing_stop_from_the_ticket(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Post-only limit")
    await user.should_not_see(marker="ticket-tif")  # post-only is GTC by nature
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.001")
    user.find(marker="submit-order").click()
    await user.should_see(content="LIMIT_MAKER", marker="open-orders", retries=50)
    choose(user, "ticket-type", "Market")
    user.find(marker="ticket-quantity").clear().type("0.01")
    user.find(marker="submit-order").click()  # something to protect
    user.find(marker="tab-history").click()
    await user.should_see(content="FILLED", marker="order-history", retries=50)
    user.find(marker="tab-open").click()
    user.find(marker="side-sell").click()
    choose(user, "ticket-type", "Trailing stop")
    await user.should_see(marker="ticket-trail")
    await user.should_not_see(marker="ticket-stop")
    user.find(marker="ticket-quantity").clear().type("0.005")
    user.find(marker="ticket-trail").type("5")
    await user.should_see("trailing_delta_bps must be a whole number of basis points from 10 to 2000")
    user.find(marker="ticket-trail").clear().type("150")
    user.find(marker="submit-order").click()
    await user.should_see(content="TRAILING_STOP_MARKET", marker="open-orders", retries=50)

    def trailing() -> dict[str, object]:
        return next(r for r in grid_rows(user, "open-orders") if r["type"] == "TRAILING_STOP_MARKET")

    await wait_for(lambda: trailing()["status"] == "OPEN", "the trailing stop resting")
    assert (trailing()["side"], trailing()["quantity"]) == ("SELL", "0.005")
    stored = await services().orders.get(user_id_of(user), str(trailing()["id"]))
    assert (stored["trailing_delta_bps"], trailing()["stop_price"]) == (150, "trail 150 bps")
    user.find(marker="open-orders").trigger("cellClicked", {"colId": "edit", "data": {"id": trailing()["id"]}})
    await user.should_see(marker="edit-trail")
    user.find(marker="edit-trail").clear().type("300")
    user.find(marker="edit-save").click()
    await user.should_see(content="trail 300 bps", marker="open-orders", retries=50)


async def test_order_book_shows_ten_levels_a_side_and_the_spread(user: User) -> None:
    await register_in_browser(user)
    services().market.apply_trade(Trade("BTCUSDT", Decimal("90000"), Decimal("0.1"), "BUY", now_ms()))
    await wait_for(lambda: element(user, "book-bids").content.count("data-price") >= 10, "ten bid levels")
    assert element(user, "book-asks").content.count("data-price") >= 10
    await user.should_see("Spread")


async def test_theme_choice_is_remembered(user: User) -> None:
    await register_in_browser(user)
    user.find(marker="theme-toggle").click()
    with user.client:  # type: ignore[union-attr]
        assert app.storage.user["dark_mode"] is False
    await user.open("/trade/BTCUSDT")
    with user.client:  # type: ignore[union-attr]
        (dark,) = ElementFilter(kind=ui.dark_mode, local_scope=False)
    assert dark.value is False  # the new page starts light
