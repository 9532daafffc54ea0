"""End to end in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a real
`python main.py`: log in, watch live prices and the live candle (background pushes), switch symbol without a page
load, click a book level into the ticket, place a market order, see it FILLED and the position; modify a resting
limit order from the blotter and halt trading with the kill switch; screenshots at desktop and phone (390 px) width
go to tests/e2e/artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories import PASSWORD, unique_email

ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT = 15_000  # ms: generous upper bounds for a loaded 2-core machine; expectations return as soon as they hold
PRICE_ON_TICK = re.compile(r"^\d{1,3}(,\d{3})*\.\d{2}$")  # e.g. 90,098.67, never 90098.6686686…
# The outermost elements sticking out of the viewport (for the failure message).
WIDEST_JS = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
            && e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
  .slice(0, 5).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)"""
LAST_CANDLE_JS = "() => getElement(document.querySelector('[data-testid=chart]').id.slice(1)).chart.getOption()"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (./dev test installs it)")
async def test_log_in_trade_and_watch_live_updates(live_server: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    email = unique_email("e2e")
    async with httpx.AsyncClient(base_url=live_server) as api:
        assert (await api.post("/auth/register", json={"email": email, "password": PASSWORD})).status_code == 201
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{live_server}/")
            await page.wait_for_url("**/login?redirect_to=/", timeout=WAIT)  # not logged in yet
            await page.get_by_label("Email").fill(email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url("**/trade/BTCUSDT", timeout=WAIT)  # / -> the first symbol
            await expect(page.get_by_text("Available 10,000.00 USDT")).to_be_visible(timeout=WAIT)
            await expect(page.get_by_test_id("environment")).to_have_text("PAPER")

            await _live_price_and_candle_change(page)
            await _symbol_switch_keeps_the_page(page)
            await _clicking_a_book_level_fills_the_ticket(page)

            await page.get_by_label("Order type").click()
            await page.get_by_role("option", name="Market", exact=True).click()
            await page.get_by_label("Amount (BTC)").fill("0.01")
            await page.get_by_test_id("submit-order").click()
            await page.get_by_role("tab", name="Order history").click()
            await expect(page.locator(".ag-cell:visible", has_text="FILLED").first).to_be_visible(timeout=WAIT)
            await page.get_by_role("tab", name="Positions").click()
            position = page.locator(".ag-row:visible", has_text="BTCUSDT").first
            await expect(position).to_be_visible(timeout=WAIT)
            # 0.01 BTC less the 0.1 % taker fee, paid in the received asset
            await expect(position.locator("[col-id=quantity]")).to_have_text("0.00999", timeout=WAIT)
            await expect(position.locator("[col-id=avg_entry_price]")).to_have_text(PRICE_ON_TICK)
            await _modify_a_resting_order_then_halt_trading(page)
            await page.screenshot(path=str(ARTIFACTS / "trade-desktop.png"), full_page=True)

            await page.set_viewport_size({"width": 390, "height": 844})  # a phone
            await page.reload()
            await expect(page.get_by_test_id("submit-order")).to_be_visible(timeout=WAIT)
            await expect(page.get_by_test_id("environment")).to_be_visible()
            overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            wide = await page.evaluate(WIDEST_JS)
            assert overflow <= 0, f"the page is {overflow} px wider than a 390 px phone: {wide}"
            await page.screenshot(path=str(ARTIFACTS / "trade-phone.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()


async def _live_price_and_candle_change(page: Page) -> None:
    """The header's last price and the chart's live candle change without any action: server pushes."""
    price = page.get_by_test_id("last-price")
    first = await price.inner_text()
    await expect(price).not_to_have_text(first, timeout=WAIT)
    before = await page.evaluate(f"() => ({LAST_CANDLE_JS})().series[0].data.slice(-1)[0]")
    await page.wait_for_function(
        f"(before) => JSON.stringify(({LAST_CANDLE_JS})().series[0].data.slice(-1)[0]) !== JSON.stringify(before)",
        arg=before,
        timeout=WAIT,
    )


async def _clicking_a_book_level_fills_the_ticket(page: Page) -> None:
    """A click on a book row (repainted markup) reaches the server through its panel's listener. Clicked and read
    in one step in the page, because the rows are replaced up to 4 times a second."""
    await expect(page.locator(".tw-row[data-price]").first).to_be_attached(timeout=WAIT)
    price = await page.evaluate(
        "() => { const row = document.querySelector('.tw-row[data-price]'); row.click(); return row.dataset.price; }"
    )
    await expect(page.get_by_label("Price (USDT)", exact=True)).to_have_value(price, timeout=WAIT)


async def _symbol_switch_keeps_the_page(page: Page) -> None:
    """Symbol and interval switches change the URL/chart but never load a new page."""
    await page.evaluate("() => { window.__samePage = true; }")
    await page.get_by_test_id("symbol-switcher").click()
    await page.get_by_role("option", name="ETHUSDT", exact=True).click()
    await page.wait_for_url("**/trade/ETHUSDT", timeout=WAIT)
    await expect(page.get_by_role("button", name="Buy ETH")).to_be_visible(timeout=WAIT)
    await page.get_by_role("button", name="1h", exact=True).click()
    await page.go_back()  # back to BTCUSDT, still without a page load
    await page.wait_for_url("**/trade/BTCUSDT", timeout=WAIT)
    await expect(page.get_by_role("button", name="Buy BTC")).to_be_visible(timeout=WAIT)
    assert await page.evaluate("() => window.__samePage === true")


async def _modify_a_resting_order_then_halt_trading(page: Page) -> None:
    """A limit BUY far below the market rests; the blotter's Edit moves it (the old order ends REPLACED); the kill
    switch, after its confirmation, halts the account and cancels the replacement."""
    await page.get_by_label("Order type").click()
    await page.get_by_role("option", name="Limit", exact=True).click()
    await page.get_by_label("Price (USDT)", exact=True).fill("50000")
    await page.get_by_label("Amount (BTC)").fill("0.01")
    await page.get_by_test_id("submit-order").click()
    await page.get_by_role("tab", name=re.compile("Open orders")).click()
    resting = page.locator(".ag-row:visible", has_text="50,000.00").first
    await expect(resting.locator("[col-id=status]")).to_have_text("OPEN", timeout=WAIT)
    await resting.locator("[col-id=edit]").click()
    await page.get_by_label("Price", exact=True).fill("50100")
    await page.get_by_role("button", name="Modify").click()
    replacement = page.locator(".ag-row:visible", has_text="50,100.00").first
    await expect(replacement.locator("[col-id=status]")).to_have_text("OPEN", timeout=WAIT)
    await expect(page.locator(".ag-row:visible", has_text="50,000.00")).to_have_count(0, timeout=WAIT)

    await page.get_by_role("button", name="Trading active").click()
    await page.locator(".q-menu").get_by_text("Halt trading").click()
    await page.get_by_role("button", name="Halt trading").click()  # the confirmation
    await expect(page.get_by_role("button", name="Trading halted")).to_be_visible(timeout=WAIT)
    await expect(page.locator(".ag-row:visible", has_text="50,100.00")).to_have_count(0, timeout=WAIT)
    await page.get_by_role("tab", name="Order history").click()
    history = page.locator(".ag-row:visible", has_text="50,000.00").first
    await expect(history.locator("[col-id=status]")).to_have_text("REPLACED", timeout=WAIT)
