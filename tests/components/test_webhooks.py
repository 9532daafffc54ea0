"""/settings → Webhooks: a refused URL says why, an added webhook shows its secret once and its deliveries,
delete removes it."""

from __future__ import annotations

import asyncio

import pytest
from nicegui.testing import User

from app.events import UserEvent
from tests.components.helpers import register_in_browser, services, user_id_of
from tests.fakes.webhook_receiver import webhook_receiver


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")  # read when the user fixture starts main.py


async def test_add_see_deliveries_and_delete_a_webhook(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    await user.should_see("No webhooks yet.")
    user.find(marker="webhook-url").type("http://10.0.0.1/hook")
    user.find(marker="webhook-add").click()
    await user.should_see("host 10.0.0.1 is not allowed here (WEBHOOK_ALLOWED_HOSTS)", retries=30)

    async with webhook_receiver() as receiver:
        user.find(marker="webhook-url").clear().type(receiver.url())
        user.find(marker="webhook-add").click()
        await user.should_see(marker="webhook-secret", retries=30)
        [secret] = user.find(marker="webhook-secret").elements
        assert secret.text.startswith("whsec_")  # type: ignore[attr-defined]
        await user.should_see("Fills · since", retries=30)  # the list is re-read after the secret shows
        user_id = user_id_of(user)
        [webhook] = await services().webhooks.list_for_user(user_id)
        services().bus.publish_user(UserEvent.create(user_id, "FILL", {"id": "01FILL"}, 1))
        deadline = asyncio.get_running_loop().time() + 30  # the delivery runs in the background
        while asyncio.get_running_loop().time() < deadline:  # its record follows the receiver's answer
            if await services().webhooks.deliveries(user_id, webhook.id):
                break
            await asyncio.sleep(0.02)
        user.find(marker="webhooks-refresh").click()
        await user.should_see("DELIVERED", retries=30)
        await user.should_see("fill #1 · 200", retries=30)
        assert len(receiver.received) == 1

    user.find(marker="webhook-delete").click()
    await user.should_see("No webhooks yet.", retries=30)
