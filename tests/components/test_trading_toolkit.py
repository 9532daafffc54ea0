"""The trader's toolkit on the trade screen: the kill switch, cancel-all of one symbol, close a position."""

from __future__ import annotations

from nicegui.testing import User

from app.orders import OrderRequest
from tests.components.helpers import choose, grid_rows, register_in_browser, services, user_id_of, wait_for


async def place_limit(user: User, price: str) -> None:
    user.find(marker="ticket-price").clear().type(price)
    user.find(marker="ticket-quantity").clear().type("0.001")
    user.find(marker="submit-order").click()
    await user.should_see(content=f"{price[:2]},{price[2:]}.00", marker="open-orders", retries=50)


async def test_halting_asks_first_then_cancels_open_orders_and_shows_the_state(user: User) -> None:
    await register_in_browser(user)
    await place_limit(user, "50000")
    await user.should_see("Trading active")

    user.find(marker="trading-state").click()
    user.find(marker="trading-state-halted").click()
    await user.should_see(marker="confirm-dialog")
    user.find(marker="confirm-no").click()  # changed nothing
    await user.should_not_see(marker="confirm-dialog")
    assert grid_rows(user, "open-orders")

    user.find(marker="trading-state").click()
    user.find(marker="trading-state-halted").click()
    await user.should_see(marker="confirm-dialog")
    user.find(marker="confirm-yes").click()
    await user.should_see("Trading halted", retries=30)
    assert user.notify.contains("Trading halted; canceling 1 open order")
    await user.should_see("Open orders (0)", retries=50)
    [account] = await services().accounts.list_for_user(user_id_of(user))
    assert services().trading.states.state(account.id).value == "HALTED"


async def test_cancel_all_of_the_pages_symbol_keeps_other_symbols_orders(user: User) -> None:
    await register_in_browser(user)
    await place_limit(user, "50000")
    svc, user_id = services(), user_id_of(user)
    [account] = await svc.accounts.list_for_user(user_id)
    await svc.orders.submit(
        user_id,
        OrderRequest(symbol="ETHUSDT", side="BUY", type="LIMIT", quantity="0.01", price="1000", account_id=account.id),
    )
    user.find("Cancel all BTCUSDT").click()
    await user.should_see("Canceling 1 open BTCUSDT order", retries=30)
    await wait_for(lambda: [r["symbol"] for r in grid_rows(user, "open-orders")] == ["ETHUSDT"], "ETH order only")


async def test_closing_a_position_from_the_positions_tab(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Market")
    user.find(marker="ticket-quantity").type("0.01")
    user.find(marker="submit-order").click()
    user.find(marker="tab-positions").click()
    await user.should_see(content="Close", marker="positions", retries=50)
    row = grid_rows(user, "positions")[0]
    user.find(marker="positions").trigger("cellClicked", {"colId": "action", "data": row})
    await user.should_see("Sell your whole BTCUSDT position at market?")
    user.find(marker="confirm-yes").click()
    await user.should_see("Closing: SELL 0.00999 BTCUSDT at market", retries=30)
    await wait_for(lambda: grid_rows(user, "positions")[0]["quantity"] == "0", "the position closed")
    assert grid_rows(user, "positions")[0]["action"] == ""
