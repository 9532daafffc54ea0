"""Price alerts on the trade page: set one, see it fire once as a notification, and stay stored."""

from __future__ import annotations

from decimal import Decimal

from nicegui.testing import User

from app.ids import now_ms
from app.market.models import Trade
from tests.components.helpers import register_in_browser, services


def _trade(price: str) -> None:
    services().market.apply_trade(Trade("BTCUSDT", Decimal(price), Decimal("0.1"), "BUY", now_ms()))


async def test_alert_fires_once_and_is_stored(user: User) -> None:
    await register_in_browser(user)
    _trade("90000")
    user.find(marker="alert-price").type("95000")
    user.find(marker="alert-add").click()
    await user.should_see("Alert set: BTCUSDT rises to 95000", retries=30)
    await user.should_see(marker="alert-active")
    _trade("95000.01")
    await user.should_see(marker="alert-fired", retries=50)
    _trade("95100")
    _trade("94000")
    _trade("95200")
    await user.should_see("95,200.00", retries=30)  # the later prices reached the page
    fired = [m for m in user.notify.messages if m.startswith("Price alert")]
    assert fired == ["Price alert: BTCUSDT rose to 95000 (last 95000.01)"]
    await user.open("/trade/BTCUSDT")
    await user.should_see(marker="alert-fired")  # stored: still there after a reload


async def test_alert_below_the_price_and_its_validation(user: User) -> None:
    await register_in_browser(user)
    _trade("90000")
    user.find(marker="alert-price").type("85000.001")
    user.find(marker="alert-add").click()
    await user.should_see("price must be a multiple of the tick size 0.01", retries=30)
    user.find(marker="alert-price").clear().type("85000")
    user.find(marker="alert-add").click()
    await user.should_see("Alert set: BTCUSDT falls to 85000", retries=30)
    user.find(marker="alert-delete").click()
    await user.should_see("No alerts", retries=30)
