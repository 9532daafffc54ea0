"""Accessibility in real headless Chromium: axe-core's WCAG 2.1 A/AA rules (the axe.min.js bundled by the
`axe-playwright-python` dev package) on /login, /trade/BTCUSDT and /settings in the dark and the light theme find no
serious or critical violation; the order book, the ticket and the blotter work from the keyboard, with a visible
focus ring. One app process, a handful of page loads."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories import PASSWORD, unique_email

WAIT = 15_000  # ms: upper bounds for a loaded machine; expectations return as soon as they hold
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
BLOCKING = {"serious", "critical"}
FOCUS_RING_JS = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  return [style.outlineStyle, style.outlineWidth, el.matches(':focus-visible')];
}"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (./dev test installs it)")
async def test_pages_pass_axe_in_both_themes_and_the_desk_works_from_the_keyboard(live_server: str) -> None:
    email = unique_email("a11y")
    async with httpx.AsyncClient(base_url=live_server) as api:
        assert (await api.post("/auth/register", json={"email": email, "password": PASSWORD})).status_code == 201
    axe = Axe()
    found: dict[str, list[str]] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            await page.goto(f"{live_server}/login")
            found["/login dark"] = await _blocking_violations(axe, page)
            await page.get_by_label("Email").fill(email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url("**/trade/BTCUSDT", timeout=WAIT)
            await _book_and_ticket_work_from_the_keyboard(page)  # leaves an open order: the blotter has a row
            for theme in ("dark", "light"):
                for path in ("/trade/BTCUSDT", "/settings"):
                    await page.goto(f"{live_server}{path}")
                    await expect(page.get_by_role("button", name="Dark or light theme")).to_be_visible(timeout=WAIT)
                    found[f"{path} {theme}"] = await _blocking_violations(axe, page)
                await page.get_by_role("button", name="Dark or light theme").click()
                await expect(page.locator("body.body--dark")).to_have_count(1 if theme == "light" else 0)
            await page.goto(f"{live_server}/trade/BTCUSDT")  # dark again
            await _an_order_is_canceled_from_the_keyboard(page)
            await page.goto(f"{live_server}/logout")
            await page.get_by_role("button", name="Log out").click()
            await page.wait_for_url("**/login**", timeout=WAIT)
            # Logged out, the choice is gone (dark by default); light as Quasar would switch it, for completeness.
            await page.evaluate("() => Quasar.Dark.set(false)")
            await expect(page.locator("body.body--light")).to_have_count(1)
            found["/login light"] = await _blocking_violations(axe, page)
        finally:
            await browser.close()
    assert {where: rules for where, rules in found.items() if rules} == {}


async def _blocking_violations(axe: Axe, page: Page) -> list[str]:
    """Serious and critical WCAG 2.1 A/AA violations, each as `rule: first offending element`."""
    await page.wait_for_load_state("networkidle")
    results = await axe.run(page, options=WCAG_21_AA)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [
        f"{v['id']}: {v['nodes'][0]['html'][:120]} ({len(v['nodes'])} nodes)"
        for v in violations
        if v.get("impact") in BLOCKING
    ]


async def _has_focus_ring(page: Page) -> bool:
    style, width, focus_visible = await page.evaluate(FOCUS_RING_JS)
    return bool(focus_visible and style != "none" and width != "0px")


async def _book_and_ticket_work_from_the_keyboard(page: Page) -> None:
    """Enter on the focused bids list puts the best bid into the ticket; the ticket is filled and sent by keys."""
    await page.keyboard.press("Shift")  # keyboard modality: Chromium then shows :focus-visible for focus() too
    bids = page.get_by_role("button", name="Bids: Enter uses the best bid price")
    await expect(bids.locator(".tw-row[data-price]").first).to_be_attached(timeout=WAIT)
    price = page.get_by_label("Price (USDT)", exact=True)
    # The ticket opens with the last price in it: empty it first, or the wait below would pass before the book's
    # price arrived, and that late answer would then overwrite the "1000" typed next (the order fills at the bid).
    await price.fill("")
    await bids.focus()
    assert await _has_focus_ring(page)
    await page.keyboard.press("Enter")
    await expect(price).not_to_have_value("", timeout=WAIT)
    await price.fill("1000")  # far below the market: the order stays open
    await expect(price).to_have_value("1000")
    await page.get_by_label("Amount (BTC)").focus()
    await page.keyboard.type("0.01")
    await page.get_by_test_id("submit-order").focus()
    assert await _has_focus_ring(page)
    await page.keyboard.press("Enter")
    await expect(page.locator(".ag-row:visible [col-id=action]")).to_have_count(1, timeout=WAIT)


async def _an_order_is_canceled_from_the_keyboard(page: Page) -> None:
    """The open order's Cancel cell is reached by focus (Tab / arrow keys in the grid) and Enter cancels it."""
    await page.keyboard.press("Shift")
    cancel = page.locator(".ag-row:visible [col-id=action]").first
    await expect(cancel).to_have_text("Cancel", timeout=WAIT)
    await cancel.focus()
    assert await _has_focus_ring(page)
    await page.keyboard.press("Enter")
    await expect(page.locator(".ag-row:visible [col-id=action]")).to_have_count(0, timeout=WAIT)
