"""The candlestick chart: the live candle updates in place and rolls over, intervals switch, fills and open orders
are drawn — all without ever re-sending the chart's option tree (only small `setOption`/helper calls travel)."""

from __future__ import annotations

import json
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


async def test_a_page_that_falls_behind_gets_the_newest_candles_not_a_backlog(user: User) -> None:
    await register_in_browser(user)
    chart: ui.echart = element(user, "chart")
    assert user.client is not None
    client, outbox = user.client, user.client.outbox
    candles = chart.options["series"][0]["data"]
    now = now_ms() // MINUTE * MINUTE + 1_000

    def queued() -> list[str]:
        calls = [m[2]["code"] for m in outbox.messages if m[1] == "run_javascript"]
        return [code for code in calls if f"twCandles({chart.id}," in code]

    tab_id, client.tab_id = client.tab_id, None  # the socket dropped: nothing leaves the outbox meanwhile
    try:
        for price in (91000.0, 91100.0, 91200.0):  # three flushes while the page is away
            _trade(str(price), now)
            await wait_for(lambda price=price: candles[-1][2] == price, f"the live candle at {price}")
        assert len(queued()) == 1, "one live-candle message per page however many flushes it missed"
        code = queued()[0]
        assert json.loads(code[code.index("[") : code.rindex("]") + 1])[-1][2] == 91200.0  # the newest close
    finally:
        client.tab_id = tab_id
    await wait_for(lambda: not queued(), "the message to leave once the socket is back")
    spy = OutboxSpy(user)
    _trade("91300", now)  # a sent message is never changed: the next flush queues a new one
    await wait_for(lambda: any("91300" in code for code in spy.calls(f"twCandles({chart.id},")), "the next candle")
