"""/portfolio: reached from the user menu; the selected account's figures, equity curve and per-symbol table."""

from __future__ import annotations

from decimal import Decimal

from nicegui.testing import User

from app.orders import OrderRequest
from tests.components.helpers import element, register_in_browser, services, user_id_of, wait_for


async def test_portfolio_shows_the_accounts_curve_and_performance(user: User) -> None:
    await register_in_browser(user)
    user_id = user_id_of(user)
    await services().orders.submit(user_id, OrderRequest(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01"))
    await services().engine.drain()
    await services().equity.flush_changed()  # what the 5-second job does (it may have run already)
    performance = await services().history.performance(user_id, None)

    user.find(marker="user-menu").click()
    user.find(marker="to-portfolio").click()
    await user.should_see(marker="equity-chart", retries=30)
    await user.should_see(content=performance["fees"], marker="fees")
    await user.should_see(content=performance["equity"], marker="equity")
    assert element(user, "performance").rows == performance["symbols"]
    assert [row["symbol"] for row in performance["symbols"]] == ["BTCUSDT"]
    points = element(user, "equity-chart").options["series"][0]["data"]
    assert points and all(t % 60_000 == 0 and 9990 < value < 10000 for t, value in points)

    assert user.client is not None
    with user.client:
        element(user, "interval").set_value("1d")  # the simulated user cannot click a toggle's button
    await wait_for(
        lambda: [t % 86_400_000 for t, _ in element(user, "equity-chart").options["series"][0]["data"]] == [0],
        "one point at the day's start",
    )


async def test_another_paper_account_has_its_own_portfolio(user: User) -> None:
    await register_in_browser(user)
    user_id = user_id_of(user)
    other = await services().accounts.add_paper_account(user_id, "Strategy B", {"USDT": Decimal(5)})
    await services().equity.snapshot([other.id])
    await user.open("/portfolio")
    await user.should_see(content="10000", marker="equity", retries=30)
    # The default account's curve: none of Strategy B's snapshots (only its own, from the minute job if it ran).
    assert all(value == 10000 for _, value in element(user, "equity-chart").options["series"][0]["data"])
    user.find(marker="account-picker").click()
    user.find("Strategy B · PAPER").click()
    await user.should_see(content="5", marker="equity", retries=30)
    values = [v for _, v in element(user, "equity-chart").options["series"][0]["data"]]
    assert values and all(value == 5 for value in values)
