"""The blotter from the keyboard: Enter on an open order's Cancel cell (the grid's keydown listener hands the row id
to the server) cancels that order; an id that is not one of the page's open orders is ignored."""

from __future__ import annotations

from nicegui.testing import User

from tests.components.helpers import grid_rows, register_in_browser


async def test_enter_on_a_cancel_cell_cancels_that_order(user: User) -> None:
    await register_in_browser(user)
    for price in ("50000", "49000"):
        user.find(marker="ticket-price").clear().type(price)
        user.find(marker="ticket-quantity").clear().type("0.001")
        user.find(marker="submit-order").click()
        await user.should_see(f"Open orders ({1 if price == '50000' else 2})", retries=50)
    rows = {row["price"]: row["id"] for row in grid_rows(user, "open-orders")}

    user.find(marker="open-orders").trigger("keydown", "not-an-open-order")  # ignored
    user.find(marker="open-orders").trigger("keydown", rows["49,000.00"])  # what _CANCEL_KEY_JS emits
    await user.should_see("Open orders (1)", retries=50)
    assert [row["id"] for row in grid_rows(user, "open-orders")] == [rows["50,000.00"]]
