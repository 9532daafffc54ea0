"""The blotter's Export menu downloads the page account's statements (the API's CSV bytes)."""

from __future__ import annotations

import csv
import io

from nicegui.testing import User

from tests.components.helpers import choose, register_in_browser


async def test_export_downloads_the_trades_and_orders_of_the_account(user: User) -> None:
    await register_in_browser(user)
    choose(user, "ticket-type", "Market")
    user.find(marker="ticket-quantity").type("0.01")
    user.find(marker="submit-order").click()
    user.find(marker="tab-history").click()
    await user.should_see(content="FILLED", marker="order-history", retries=50)

    user.find(marker="export").click()
    user.find(marker="export-fills").click()
    fills = list(csv.DictReader(io.StringIO((await user.download.next(timeout=10)).text)))
    assert [(f["symbol"], f["side"], f["quantity"], f["fee"], f["fee_asset"]) for f in fills] == [
        ("BTCUSDT", "BUY", "0.01", "0.00001", "BTC")
    ]
    user.find(marker="export").click()
    user.find(marker="export-orders").click()
    [order] = csv.DictReader(io.StringIO((await user.download.next(timeout=10)).text))
    assert (order["type"], order["status"], order["id"]) == ("MARKET", "FILLED", fills[0]["order_id"])
