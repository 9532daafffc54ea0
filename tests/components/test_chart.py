"""The candlestick chart: the live candle updates in place and rolls over, intervals switch, fills and open orders
are drawn — all without ever re-sending the chart's option tree (only small `setOption`/helper calls travel)."""

from __future__ import annotations

from decimal import Decimal

from nicegui import ui
from nicegui.testing import User

from app.ids import now_ms
from app.market.models import Trade
from tests.components.helpers import OutboxSpy, element, register_in_browser, services, wait_for

MINUTE = 60_000


def _trade(price: str, ts: int) -> None:
    services().market.apply_trade(Trade("BTCUSDT", Decimal(price), Decimal("0.5"), "BUY", ts))


async def test_live_candle_updates_in_place_rolls_over_and_switches_interval(user: User) -> None:
    await register_in_browser(user)
    chart: ui.echart = element(user, "chart")
    spy = OutboxSpy(user)
    candles = chart.options["series"][0]["data"]
    count = len(candles)
    now = now_ms() // MINUTE * MINUTE + 1_000

    _trade("91000", now)
    await wait_for(lambda: candles[-1][2] == 91000.0, "the live candle to close at 91000")
    assert len(candles) == count or len(candles) == count + 1  # same minute, or the minute had just begun
    count = len(candles)
    _trade("91500", now + 1_000)
    await wait_for(lambda: candles[-1][2] == 91500.0, "the live candle to update in place")
    assert len(candles) == count and candles[-1][4] >= 91500.0  # same candle, new high

    _trade("90500", now + MINUTE)
    await wait_for(lambda: candles[-1][0] == now - 1_000 + MINUTE, "the next minute's candle")
    assert len(candles) == count + 1 and candles[-1][1] == candles[-1][2] == 90500.0  # rolled over
    await wait_for(lambda: spy.calls(f"twCandles({chart.id}"), "the new bars to travel to the browser")

    element(user, "interval").set_value("1h")
    await wait_for(lambda: chart.options["series"][0]["data"][-1][0] % 3_600_000 == 0, "hourly candles")
    setoption = f'runMethod({chart.id}, "run_chart_method", ["setOption",'
    await wait_for(
        lambda: any('{"id":"candles","data":' in code for code in spy.calls(setoption)), "the new series to travel"
    )
    assert chart.id not in spy.updated, "the whole option tree was re-sent"


async def test_fill_markers_and_open_order_lines(user: User) -> None:
    await register_in_browser(user)
    chart: ui.echart = element(user, "chart")
    spy = OutboxSpy(user)
    candles = chart.options["series"][0]
    user.find(marker="ticket-price").clear().type("50000")
    user.find(marker="ticket-quantity").type("0.001")
    user.find(marker="submit-order").click()
    await wait_for(lambda: [d["yAxis"] for d in candles["markLine"]["data"]] == [50000.0], "the order's line")
    assert candles["markLine"]["data"][0]["label"]["formatter"] == "BUY 0.001 @ 50000"

    user.find(marker="ticket-type").click()
    user.find("Market").click()
    user.find(marker="ticket-quantity").clear().type("0.01")
    user.find(marker="submit-order").click()
    await wait_for(lambda: len(candles["markPoint"]["data"]) >= 1, "a fill marker")
    marker = candles["markPoint"]["data"][0]
    assert marker["value"] == "B" and marker["coord"][1] > 0
    user.find(marker="cancel-all").click()
    await wait_for(lambda: candles["markLine"]["data"] == [], "the line to go with the canceled order")
    assert chart.id not in spy.updated, "the whole option tree was re-sent"
