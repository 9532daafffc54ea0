"""Login, register and logout pages, driven through NiceGUI's simulated user."""

from __future__ import annotations

import httpx
import pytest
from nicegui import app
from nicegui.testing import User

from components.session import safe_redirect
from tests.components.helpers import log_out, services, settle_session
from tests.factories import PASSWORD, unique_email


async def register_in_browser(user: User, email: str) -> None:
    await user.open("/register")
    user.find(marker="email").type(email)
    user.find(marker="password").type(PASSWORD)
    user.find(marker="submit").click()
    await user.should_see(marker="ticket", retries=30)
    await settle_session(user)


async def log_in(user: User, email: str) -> None:
    user.find(marker="email").type(email)
    user.find(marker="password").type(PASSWORD)
    user.find(marker="submit").click()


def other_browser(cookie: str | None = None, base_url: str = "http://test") -> httpx.AsyncClient:
    """Another browser on the same app, optionally holding a given session cookie."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=base_url, cookies={"session": cookie} if cookie else None
    )


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
    await log_out(user)
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


async def test_the_user_menu_logs_out(user: User) -> None:
    await register_in_browser(user, unique_email())
    user.find(marker="user-menu").click()
    user.find(marker="logout").click()
    await user.should_see(marker="to-register", retries=30)
    await user.open("/trade/BTCUSDT")
    await user.should_not_see(marker="ticket")


async def test_a_get_of_logout_does_not_log_out(user: User) -> None:
    """A link or an image on another site pointing at /logout only shows the question."""
    await register_in_browser(user, unique_email())
    response = await user.http_client.get("/logout")
    assert response.status_code == 200
    await user.open("/logout")
    await user.should_see(marker="logout-confirm")
    await user.open("/trade/BTCUSDT")
    await user.should_see(marker="ticket")


async def test_post_logout_ends_the_session_unless_cross_origin(user: User) -> None:
    await register_in_browser(user, unique_email())
    refused = await user.http_client.post("/logout", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    await user.open("/trade/BTCUSDT")
    await user.should_see(marker="ticket")

    response = await user.http_client.post("/logout", headers={"Origin": "http://test"})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    await user.open("/trade/BTCUSDT")
    await user.should_not_see(marker="ticket")
    await user.should_see(marker="to-register")


async def test_login_renews_the_session_id(user: User) -> None:
    """Session fixation: a session cookie known before the login (planted by someone else) stays logged out."""
    email = unique_email()
    await register_in_browser(user, email)
    await log_out(user)
    await user.open("/login?redirect_to=/settings")
    before = user.http_client.cookies["session"]
    await log_in(user, email)
    await user.should_see("Change password", retries=30)  # redirect_to survived the renewal
    after = user.http_client.cookies["session"]
    assert after != before
    renewal = next(path for path in user.back_history if path.startswith("/login/session?ticket="))

    async with other_browser(before) as planted, other_browser(after) as logged_in:
        refused = await planted.get("/trade/BTCUSDT")
        assert refused.status_code == 307 and refused.headers["location"].startswith("/login")
        assert (await logged_in.get("/trade/BTCUSDT")).status_code == 200
        replayed = await planted.get(renewal)  # a ticket is single-use and bound to the browser that logged in
        assert (replayed.status_code, replayed.headers["location"]) == (303, "/login")
        assert (await planted.get("/trade/BTCUSDT")).status_code == 307


async def test_open_redirects_are_refused(user: User) -> None:
    email = unique_email()
    await register_in_browser(user, email)
    await log_out(user)
    await user.open("/login?redirect_to=//evil.example.com")
    await log_in(user, email)
    await user.should_see(marker="ticket", retries=30)


@pytest.mark.parametrize("target", ["/%09/evil.example", "/%5Cevil.example", "//evil.example"])
async def test_a_logged_in_visitor_is_not_sent_off_site(user: User, target: str) -> None:
    await register_in_browser(user, unique_email())
    await user.open(f"/login?redirect_to={target}")
    await user.should_see(marker="ticket", retries=30)
    assert user.back_history[-1] == "/"  # not the target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/ /evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
        None,
    ],
)
def test_safe_redirect_refuses_anything_but_a_local_path(target: str | None) -> None:
    assert safe_redirect(target) == "/"


@pytest.mark.parametrize("target", ["/", "/settings", "/trade/ETHUSDT", "/trade/BTCUSDT?tab=fills"])
def test_safe_redirect_keeps_local_paths(target: str) -> None:
    assert safe_redirect(target) == target


async def test_security_headers_on_pages_api_and_errors(user: User) -> None:
    for path in ("/login", "/health", "/api/orders", "/no-such-page"):
        response = await user.http_client.get(path)
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert headers["referrer-policy"] == "same-origin", path


async def test_session_cookie_is_secure_over_https_only(user: User) -> None:
    async with other_browser(base_url="https://test") as https, other_browser() as http:
        secure = (await https.get("/login")).headers["set-cookie"]
        plain = (await http.get("/login")).headers["set-cookie"]
    assert secure.startswith("session=") and "; secure" in secure.lower()
    assert plain.startswith("session=") and "secure" not in plain.lower()
    assert "httponly" in secure.lower() and "samesite=lax" in secure.lower()


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
