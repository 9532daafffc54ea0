"""/settings: API keys (created with label and scopes, shown once with a copy button, listed, revoked after a
confirmation) and "Recent activity"."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from tests.components.helpers import element, register_in_browser, services, user_id_of


async def test_a_key_is_created_shown_once_and_revoked_after_confirmation(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    await user.should_see("No API keys yet.")
    user.find(marker="api-key-label").clear().type("grid bot")
    user.find(marker="api-key-trade").click()
    user.find(marker="create-api-key").click()
    await user.should_see(marker="new-api-key", retries=30)
    shown = element(user, "new-api-key")
    assert isinstance(shown, ui.label)
    key = shown.text
    verified = await services().api_keys.authenticate(key, "127.0.0.1")  # the very key, working
    assert verified.id == user_id_of(user) and verified.scopes == frozenset({"read", "trade"})
    user.find(marker="copy-api-key").click()
    await user.should_see("Key copied.")
    await user.should_see(marker="api-key-row")
    await user.should_see("grid bot")

    await user.open("/settings")  # never shown again
    await user.should_see("grid bot")
    await user.should_not_see(key)
    await user.should_not_see(marker="new-api-key")
    await user.should_see("API key created")  # recent activity

    user.find(marker="revoke-api-key").click()
    user.find(marker="revoke-api-key-confirm").click()
    await user.should_see("Key 'grid bot' revoked.", retries=30)
    await user.should_see("No API keys yet.")
    assert await services().api_keys.list_for_user(user_id_of(user)) == []
    await user.open("/settings")
    await user.should_see("API key revoked")


async def test_a_bad_address_shows_the_reason_and_creates_nothing(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    await user.should_see("Account created")  # the registration, in recent activity
    user.find(marker="api-key-addresses").type("not-an-address")
    user.find(marker="create-api-key").click()
    await user.should_see("is not an IP address or network", retries=30)
    await user.should_not_see(marker="new-api-key")
    assert await services().api_keys.list_for_user(user_id_of(user)) == []
