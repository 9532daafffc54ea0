"""/settings tells the owner of an account whose stored key can no longer be opened to add it again."""

from __future__ import annotations

from nicegui.testing import User
from sqlmodel import Session

from app.ids import new_id, now_ms
from storage.models import Account
from storage.repositories import accounts as account_repo
from tests.components.helpers import register_in_browser, services, user_id_of


async def test_an_account_sealed_under_a_lost_key_is_marked(user: User) -> None:
    await register_in_browser(user)
    user_id = user_id_of(user)

    def store(session: Session) -> None:
        account_repo.add(
            session,
            Account(
                id=new_id(),
                user_id=user_id,
                venue="binance-testnet",
                label="Old testnet",
                created_at=now_ms(),
                api_key_hint="abcd...wxyz",
                api_key_enc="c2VhbGVkIHVuZGVyIGEgbG9zdCBrZXk=",
                api_secret_enc="c2VhbGVkIHVuZGVyIGEgbG9zdCBrZXk=",
                key_id="0123456789ab",  # no configured ENCRYPTION_KEY has this id
            ),
        )

    services().db.run_sync(store)
    await user.open("/settings")
    await user.should_see("Old testnet")
    await user.should_see(marker="needs-new-key")
    await user.should_see("Paper")  # the paper account is listed as usual, without the mark
    assert len(user.find(marker="needs-new-key").elements) == 1
