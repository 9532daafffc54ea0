"""Exchange API keys at rest: how an account's key and secret are sealed, opened and re-sealed.

Scheme 2 (current) binds each ciphertext to its account *and* field (associated data ``<account id>/api_key`` or
``<account id>/api_secret``), so neither a ciphertext copied onto another account nor one swapped between the two
fields opens. Scheme 1 (legacy) bound both to the account id only. :func:`reseal_accounts` runs at start-up and moves
every account sealed the legacy way, or under an old ENCRYPTION_KEY (ENCRYPTION_KEY_OLD), to scheme 2 under the
current key. An account whose key id is not configured cannot be opened: it is reported, never a crash, and its
owner has to add the key again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlmodel import Session

from app.crypto import DecryptionError, KeyBox
from storage.db import Database
from storage.models import Account
from storage.repositories import account_keys
from storage.repositories.accounts import AccountRow

log = logging.getLogger(__name__)

LEGACY_SEAL_VERSION = 1
SEAL_VERSION = 2
API_KEY, API_SECRET = "api_key", "api_secret"


class KeyUnavailable(LookupError):
    """The account's stored API key cannot be opened with the configured keys: its owner must add it again."""


@dataclass(frozen=True, slots=True)
class SealedKeys:
    api_key_enc: str
    api_secret_enc: str
    key_id: str
    seal_version: int = SEAL_VERSION


@dataclass(slots=True)
class ResealReport:
    """What a start-up re-seal did: account ids moved to the current scheme and key, and those left unreadable."""

    resealed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def associated_data(account_id: str, field_name: str, seal_version: int = SEAL_VERSION) -> str:
    return account_id if seal_version == LEGACY_SEAL_VERSION else f"{account_id}/{field_name}"


def seal(keybox: KeyBox, account_id: str, api_key: str, api_secret: str) -> SealedKeys:
    """Seal a key pair for `account_id` with the current key and scheme."""
    return SealedKeys(
        api_key_enc=keybox.seal(api_key, associated_data(account_id, API_KEY)),
        api_secret_enc=keybox.seal(api_secret, associated_data(account_id, API_SECRET)),
        key_id=keybox.key_id,
    )


def open_keys(keybox: KeyBox, account: Account) -> tuple[str, str]:
    """(api_key, api_secret) of an exchange account. Raises KeyUnavailable (with a reason fit for a log line and
    the owner) if there are no keys or they cannot be opened. Never log the result."""
    if not (account.api_key_enc and account.api_secret_enc and account.key_id):
        raise KeyUnavailable(f"account {account.id} has no stored API key")
    if not keybox.has_key(account.key_id):
        raise KeyUnavailable(
            f"account {account.id} needs a new API key: it was sealed with key id {account.key_id}, which is not "
            "configured (ENCRYPTION_KEY changed without ENCRYPTION_KEY_OLD)"
        )
    key_id, version = account.key_id, account.seal_version
    try:
        api_key = keybox.open(
            account.api_key_enc, sealed_with=key_id, associated_data=associated_data(account.id, API_KEY, version)
        )
        api_secret = keybox.open(
            account.api_secret_enc, sealed_with=key_id, associated_data=associated_data(account.id, API_SECRET, version)
        )
    except DecryptionError as exc:
        raise KeyUnavailable(f"account {account.id} needs a new API key: {exc}") from None
    return api_key, api_secret


def needs_new_key(keybox: KeyBox, account: Account | AccountRow) -> bool:
    """An account with sealed keys that no configured key can open (cheap: looks at the key id only)."""
    return bool(account.api_key_enc and account.key_id and not keybox.has_key(account.key_id))


def is_current(keybox: KeyBox, account: Account) -> bool:
    return account.key_id == keybox.key_id and account.seal_version == SEAL_VERSION


async def reseal_accounts(db: Database, keybox: KeyBox) -> ResealReport:
    """Start-up step, idempotent: re-seal every account whose keys use an old key or the legacy scheme to the
    current key and scheme. Accounts that cannot be opened are logged and left as they are."""
    report = ResealReport()
    stale = [a for a in await db.read(account_keys.with_sealed_keys) if not is_current(keybox, a)]
    for account in stale:
        try:
            api_key, api_secret = open_keys(keybox, account)
        except KeyUnavailable as exc:
            log.warning("%s; its owner must remove the account and add the key again", exc)
            report.unreadable.append(account.id)
            continue
        sealed = seal(keybox, account.id, api_key, api_secret)

        def store(session: Session, account: Account = account, sealed: SealedKeys = sealed) -> bool:
            return account_keys.replace_sealed_keys(
                session,
                account.id,
                expected=(account.api_key_enc, account.api_secret_enc),
                api_key_enc=sealed.api_key_enc,
                api_secret_enc=sealed.api_secret_enc,
                key_id=sealed.key_id,
                seal_version=sealed.seal_version,
            )

        if await db.write(store):
            report.resealed.append(account.id)
    if report.resealed:
        log.info("re-sealed the API keys of %d account(s) with key id %s", len(report.resealed), keybox.key_id)
    return report
