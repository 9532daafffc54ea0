"""Exchange keys at rest: field-bound sealing, the start-up re-seal of legacy rows and of rows sealed under an old
ENCRYPTION_KEY (ENCRYPTION_KEY_OLD), and accounts whose key is gone reported instead of crashing."""

from __future__ import annotations

import logging
import os

import pytest

from app import sealed_keys
from app.crypto import KeyBox
from app.errors import Conflict
from app.services import Services
from storage.models import Account
from storage.repositories import accounts as account_repo
from tests.factories import PASSWORD, add_testnet_account, unique_email

API_KEY, SECRET = "k" * 64, "s" * 64


async def _add_account(services: Services, box: KeyBox, *, legacy: bool) -> str:
    """A testnet account row sealed the legacy way (both fields with the account id) or the current way."""
    user_id = (await services.auth.register(unique_email(), PASSWORD)).id
    return add_testnet_account(services, user_id, API_KEY, SECRET, box=box, legacy=legacy)


def _row(services: Services, account_id: str) -> Account:
    row = services.db.run_sync(lambda s: account_repo.get(s, account_id))
    assert row is not None
    return row


def _with_keybox(services: Services, box: KeyBox) -> None:
    """The server restarted with another ENCRYPTION_KEY configuration."""
    services.keybox = services.accounts.keybox = services.venues.keybox = box


async def test_a_legacy_row_opens_and_is_resealed_bound_to_its_fields(services: Services) -> None:
    account_id = await _add_account(services, services.keybox, legacy=True)
    before = _row(services, account_id)
    assert before.seal_version == sealed_keys.LEGACY_SEAL_VERSION
    assert await services.accounts.credentials(before) == (API_KEY, SECRET)

    report = await sealed_keys.reseal_accounts(services.db, services.keybox)

    after = _row(services, account_id)
    assert report.resealed == [account_id] and report.unreadable == []
    assert after.seal_version == sealed_keys.SEAL_VERSION and after.key_id == services.keybox.key_id
    assert after.api_key_enc != before.api_key_enc
    assert await services.accounts.credentials(after) == (API_KEY, SECRET)
    # The legacy associated data (the account id alone) no longer opens the new ciphertexts.
    with pytest.raises(sealed_keys.KeyUnavailable):
        sealed_keys.open_keys(services.keybox, Account(**{**after.model_dump(), "seal_version": 1}))
    # Idempotent: a second start-up has nothing to do.
    assert (await sealed_keys.reseal_accounts(services.db, services.keybox)).resealed == []
    assert _row(services, account_id).api_key_enc == after.api_key_enc


async def test_key_and_secret_swapped_between_fields_do_not_open(services: Services) -> None:
    account_id = await _add_account(services, services.keybox, legacy=False)
    row = _row(services, account_id)
    row.api_key_enc, row.api_secret_enc = row.api_secret_enc, row.api_key_enc
    with pytest.raises(sealed_keys.KeyUnavailable, match="failed authentication"):
        sealed_keys.open_keys(services.keybox, row)
    with pytest.raises(Conflict) as caught:
        await services.accounts.credentials(row)
    assert caught.value.code == "ACCOUNT_NEEDS_NEW_KEY"


async def test_rotated_key_with_the_old_one_configured_opens_and_reseals(services: Services) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    old_box = KeyBox(old_key)
    legacy_id = await _add_account(services, old_box, legacy=True)
    current_scheme_id = await _add_account(services, old_box, legacy=False)
    rotated = KeyBox(new_key, old_keys=(old_key,))
    _with_keybox(services, rotated)
    assert await services.accounts.credentials(_row(services, legacy_id)) == (API_KEY, SECRET)

    report = await sealed_keys.reseal_accounts(services.db, rotated)

    assert sorted(report.resealed) == sorted([legacy_id, current_scheme_id])
    for account_id in (legacy_id, current_scheme_id):
        row = _row(services, account_id)
        assert (row.key_id, row.seal_version) == (rotated.key_id, sealed_keys.SEAL_VERSION)
        # Opens with the new key alone: ENCRYPTION_KEY_OLD can now be removed.
        assert sealed_keys.open_keys(KeyBox(new_key), row) == (API_KEY, SECRET)


async def test_without_the_old_key_the_account_needs_a_new_key(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = await _add_account(services, KeyBox(os.urandom(32)), legacy=True)
    row = _row(services, account_id)
    _with_keybox(services, KeyBox(os.urandom(32)))

    with caplog.at_level(logging.WARNING, logger="app.sealed_keys"):
        report = await sealed_keys.reseal_accounts(services.db, services.keybox)

    assert report.unreadable == [account_id] and report.resealed == []
    assert f"account {account_id} needs a new API key" in caplog.text
    assert _row(services, account_id).api_key_enc == row.api_key_enc  # left as it was: an old key may come back
    [view] = [v for v in await services.accounts.list_for_user(row.user_id) if v.id == account_id]
    assert view.needs_new_key
    with pytest.raises(Conflict) as caught:
        await services.accounts.credentials(row)
    assert caught.value.code == "ACCOUNT_NEEDS_NEW_KEY"
    with pytest.raises(LookupError, match="needs a new API key"):
        services.venues.open(row)
    assert API_KEY not in caplog.text and SECRET not in caplog.text
