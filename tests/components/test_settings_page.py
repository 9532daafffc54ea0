"""/settings: paper reset with chosen balances, password change, log out everywhere, testnet key form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nicegui import ElementFilter, app
from nicegui.testing import User, UserInteraction

from components.live import TICK_SECONDS
from tests.components.helpers import log_out, register_in_browser, services, user_id_of
from tests.factories import PASSWORD
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance
from tests.fakes.binance.app_venues import point_services_at


async def test_settings_lists_the_paper_account(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    await user.should_see("Accounts")
    await user.should_see(marker="account-row")
    await user.should_see("Paper")


async def test_reset_paper_sets_the_chosen_balances(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    user.find(marker="reset-usdt").clear().type("2500")
    user.find(marker="reset-btc").clear().type("0.5")
    user.find(marker="reset-eth").clear().type("0")
    user.find(marker="reset").click()
    user.find(marker="reset-confirm").click()
    await user.should_see("Paper account reset: 2500 USDT, 0.5 BTC", retries=30)
    await user.open("/trade/BTCUSDT")
    await user.should_see("Available 2,500.00 USDT", retries=30)
    user.find(marker="side-sell").click()
    await user.should_see("Available 0.50000 BTC")


async def test_reset_refuses_a_negative_balance(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    user.find(marker="reset-usdt").clear().type("-5")
    user.find(marker="reset").click()
    user.find(marker="reset-confirm").click()
    await user.should_see("balances cannot be negative", retries=30)


async def test_change_password_keeps_this_session_and_needs_the_current_password(user: User) -> None:
    email = await register_in_browser(user)
    await user.open("/settings")
    user.find(marker="current-password").type("not my password")
    user.find(marker="new-password").type("a brand new secret")
    user.find(marker="change-password").click()
    await user.should_see("The current password is wrong.", retries=30)
    user.find(marker="current-password").clear().type(PASSWORD)
    user.find(marker="change-password").click()
    await user.should_see("Password changed. Other sessions were logged out.", retries=30)
    await user.open("/trade/BTCUSDT")
    await user.should_see(marker="ticket")  # this session survived
    await log_out(user)
    await user.open("/login")
    user.find(marker="email").type(email)
    user.find(marker="password").type("a brand new secret")
    user.find(marker="submit").click()
    await user.should_see(marker="ticket", retries=30)


async def test_log_out_everywhere_ends_the_session(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    user.find(marker="logout-everywhere").click()
    await user.should_see("Log in", retries=30)
    await user.open("/trade/BTCUSDT")
    await user.should_see("Log in")
    await user.should_not_see(marker="ticket")


async def test_an_open_trade_page_goes_to_login_when_the_api_logs_out_everywhere(user: User) -> None:
    await register_in_browser(user)
    user_id = user_id_of(user)
    feed = app.state.live
    assert feed.counts()[1] == 1  # the page's inbox of user events
    await services().auth.log_out_everywhere(user_id)  # what POST /auth/logout-all does
    await user.should_see("Log in", retries=30)
    await user.should_not_see(marker="ticket")
    assert not next(iter(feed._inboxes)).unsubscribe  # no more events for it


async def test_a_password_change_leaves_this_browsers_other_pages_open(user: User) -> None:
    await register_in_browser(user)
    feed = app.state.live
    trade_page = user.client
    await user.open("/settings")
    user.find(marker="current-password").type(PASSWORD)
    user.find(marker="new-password").type("a brand new secret")
    user.find(marker="change-password").click()
    await user.should_see("Password changed. Other sessions were logged out.", retries=30)
    await asyncio.sleep(3 * TICK_SECONDS)  # the flush that decides which pages the change ended
    assert user.client is not trade_page and user.client is not None
    await user.should_see(marker="change-password")  # no page navigated to /login and back
    (inbox,) = feed._inboxes
    assert inbox.unsubscribe and inbox.ending is None  # the trade page still takes the user's events


async def test_back_forward_checks_the_session(user: User) -> None:
    await register_in_browser(user)
    assert user.client is not None
    page = user.client
    with page:
        app.storage.user.clear()  # logged out in another tab: no version change, no push to this page
    UserInteraction(user, {page.layout}, None).trigger("tw_symbol", "ETHUSDT")  # the browser's back button
    await user.should_see("Log in", retries=30)
    await user.should_not_see("ETHUSDT")


async def test_a_reconnect_after_the_session_ended_goes_to_login(user: User) -> None:
    await register_in_browser(user)
    assert user.client is not None
    page = user.client
    with page:
        app.storage.user.clear()
    for handler in page.connect_handlers:  # the page's socket comes back (the first connect was the page load)
        page.safe_invoke(handler)
    await user.should_see("Log in", retries=30)


@pytest.fixture
async def fake_binance() -> AsyncIterator[FakeBinance]:
    """The offline Binance fake, with the running app's key check pointed at it (as tests/app/api does)."""
    async with FakeBinance.start() as server:
        point_services_at(services(), server)  # the key check, and the account's worker that starts right after
        yield server


async def test_add_and_remove_a_testnet_key_with_the_secret_masked(user: User, fake_binance: FakeBinance) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    secret = next(iter(user.find(marker="api-secret").elements))
    assert secret.props.get("type") == "password"  # typed into a masked field
    user.find(marker="key-label").clear().type("My testnet")
    user.find(marker="api-key").type(DOC_API_KEY)
    user.find(marker="api-secret").type(DOC_SECRET)
    user.find(marker="add-key").click()
    await user.should_see("Testnet account added.", retries=50)
    await user.should_see("My testnet", retries=30)
    await user.should_see("key vmPU...Eh8A", retries=30)  # after the reload ("My testnet" is also the input)
    await user.should_see("TESTNET")
    assert next((r.method, r.path) for r in fake_binance.requests) == ("GET", "/api/v3/account")  # the key check
    assert not [r for r in fake_binance.requests if r.method != "GET"]  # nothing was traded
    _assert_secret_nowhere(user)
    user.find(marker="remove-account").click()
    await user.should_see("Account removed.", retries=30)
    await user.should_not_see("My testnet", retries=30)


async def test_a_key_the_exchange_refuses_is_not_stored(user: User, fake_binance: FakeBinance) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    user.find(marker="api-key").type("X" * 64)
    user.find(marker="api-secret").type("Y" * 64)
    user.find(marker="add-key").click()
    await user.should_see("Invalid API-key, IP, or permissions for action.", retries=50)  # the exchange's words
    assert next(iter(user.find(marker="api-secret").elements)).value == ""  # type: ignore[attr-defined]
    await user.should_not_see("TESTNET")


def _assert_secret_nowhere(user: User) -> None:
    """The secret is in no element of the page (not even the emptied input)."""
    assert user.client is not None
    with user.client:
        for element in ElementFilter(local_scope=False, only_visible=False):
            assert DOC_SECRET not in str(element._to_dict())
