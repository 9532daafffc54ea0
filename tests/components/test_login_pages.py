"""Login, register and logout pages, driven through NiceGUI's simulated user."""

from __future__ import annotations

from nicegui.testing import User

from tests.components.helpers import services
from tests.factories import PASSWORD, unique_email


async def register_in_browser(user: User, email: str) -> None:
    await user.open("/register")
    user.find(marker="email").type(email)
    user.find(marker="password").type(PASSWORD)
    user.find(marker="submit").click()
    await user.should_see(marker="ticket", retries=30)


async def test_unauthenticated_visitors_are_sent_to_login(user: User) -> None:
    await user.open("/")
    await user.should_see("Log in")
    await user.should_see(marker="to-register")


async def test_register_lands_on_the_trade_page_with_paper_balance(user: User) -> None:
    email = unique_email()
    await register_in_browser(user, email)
    await user.should_see("BTCUSDT")
    await user.should_see("Available 10,000.00 USDT")
    await user.should_see(email)  # in the user menu


async def test_short_password_is_refused_with_the_reason(user: User) -> None:
    await user.open("/register")
    user.find(marker="email").type(unique_email())
    user.find(marker="password").type("short")
    user.find(marker="submit").click()
    await user.should_see("password must be at least 8 characters", retries=30)
    await user.should_not_see(marker="ticket")


async def test_logout_then_login_again(user: User) -> None:
    email = unique_email()
    await register_in_browser(user, email)
    await user.open("/logout")
    await user.should_see("Log in")
    await user.open("/")
    await user.should_not_see(marker="ticket")
    user.find(marker="email").type(email)
    user.find(marker="password").type("wrong password")
    user.find(marker="submit").click()
    await user.should_see("Wrong email or password.", retries=30)
    user.find(marker="password").clear()
    user.find(marker="password").type(PASSWORD)
    user.find(marker="submit").click()
    await user.should_see(marker="ticket", retries=30)


async def test_open_redirects_are_refused(user: User) -> None:
    email = unique_email()
    await register_in_browser(user, email)
    await user.open("/logout")
    await user.open("/login?redirect_to=//evil.example.com")
    user.find(marker="email").type(email)
    user.find(marker="password").type(PASSWORD)
    user.find(marker="submit").click()
    await user.should_see(marker="ticket", retries=30)


async def test_closed_registration_says_so_and_offers_no_form(user: User) -> None:
    await user.open("/login")
    await user.should_see(marker="to-register")
    services().settings.registration = "closed"
    await user.open("/register")
    await user.should_see("Sign-up is closed on this server.")
    await user.should_not_see(marker="email")
    await user.should_not_see(marker="submit")
    await user.open("/login")
    await user.should_see(marker="submit")
    await user.should_not_see(marker="to-register")
