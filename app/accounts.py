"""Trading accounts (where orders go): the paper account every user gets, and Binance testnet accounts."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from sqlmodel import Session

from app import sealed_keys
from app.activity import ActivityKind, record_in
from app.crypto import KeyBox
from app.domain import Venue
from app.errors import Conflict, NotFound, Throttled, ValidationFailed, VenueRejected, VenueThrottled, VenueUnavailable
from app.ids import new_id, now_ms
from app.venues.base import ExternalVenue
from storage.db import Database
from storage.models import Account
from storage.repositories import accounts, orders
from storage.repositories.accounts import AccountRow

log = logging.getLogger(__name__)

PAPER_LABEL = "Paper"
BINANCE_TESTNET_LABEL = "Binance testnet"
MAX_KEY_LENGTH = 256
# HMAC secrets are 64 characters; Ed25519 / RSA private keys (PEM) are longer and span lines.
MAX_SECRET_LENGTH = 4096
MAX_LABEL_LENGTH = 64
PAPER_ACCOUNT_CACHE_SIZE = 10_000
# Paper money is free; the limit keeps one user from filling the engine's memory with accounts.
MAX_PAPER_ACCOUNTS = 10

VenueFactory = Callable[[str, str], ExternalVenue]
"""Builds a venue for (api_key, api_secret): the configured Binance testnet hosts, or a fake in tests."""


class ExchangeAccounts(Protocol):
    """The execution side of exchange accounts (app/external_execution.py): told when one is added or deleted."""

    async def close_account(self, account_id: str) -> None: ...

    def account_added(self, account_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AccountView:
    """What a user may see of an account: never the key material."""

    id: str
    venue: str
    label: str
    created_at: int
    api_key_hint: str | None
    # The owner must add the key again: the exchange refused it (EXCHANGE_KEY_REJECTED), or this server cannot open
    # it (ENCRYPTION_KEY changed without ENCRYPTION_KEY_OLD).
    needs_new_key: bool = False

    @classmethod
    def of(cls, account: Account | AccountRow, keybox: KeyBox | None = None) -> AccountView:
        unreadable = keybox is not None and sealed_keys.needs_new_key(keybox, account)
        needs_new_key = account.key_rejected_at is not None or unreadable
        return cls(account.id, account.venue, account.label, account.created_at, account.api_key_hint, needs_new_key)


@dataclass(frozen=True, slots=True)
class BalanceView:
    asset: str
    free: Decimal
    locked: Decimal


def create_paper_account(
    session: Session, user_id: str, balances: Mapping[str, Decimal], label: str = PAPER_LABEL
) -> Account:
    """A new paper account with its starting balances, in the caller's transaction."""
    account = accounts.add(
        session,
        Account(id=new_id(), user_id=user_id, venue=Venue.PAPER, label=label, created_at=now_ms()),
    )
    accounts.set_balances(session, account.id, balances)
    return account


def api_key_hint(api_key: str) -> str:
    """The first 4 and last 4 characters of a key (API.md), enough to recognise it and useless to use it."""
    return f"{api_key[:4]}...{api_key[-4:]}"


def clean_label(label: str) -> str:
    """Inner whitespace collapsed; 1-64 printable characters."""
    label = " ".join(label.split())
    if not label or len(label) > MAX_LABEL_LENGTH or not label.isprintable():
        raise ValidationFailed(f"label must be 1 to {MAX_LABEL_LENGTH} printable characters", field="label")
    return label


def _clean_key(value: str, field: str, max_length: int, *, multiline: bool = False) -> str:
    """Trimmed, non-empty, bounded, printable ASCII (keys are pasted: stray spaces are common, control
    characters are not). Messages never echo the value."""
    value = value.strip()
    if not value:
        raise ValidationFailed(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters", field=field)
    allowed_controls = "\n\r" if multiline else ""
    if not all(ch.isascii() and (ch.isprintable() or ch in allowed_controls) for ch in value):
        raise ValidationFailed(f"{field} must be printable ASCII characters", field=field)
    if not multiline and any(ch.isspace() for ch in value):
        raise ValidationFailed(f"{field} must not contain spaces", field=field)
    return value


class AccountService:
    """Lists and resolves a user's accounts; every lookup is scoped to the user. Adds Binance testnet accounts
    (key checked with the exchange, then sealed with `keybox`) and soft-deletes accounts."""

    def __init__(
        self,
        db: Database,
        keybox: KeyBox | None = None,
        make_venue: VenueFactory | None = None,
        exchange: ExchangeAccounts | None = None,
    ) -> None:
        self.db = db
        self.keybox = keybox
        # None: this server has no Binance testnet wiring, so adding such accounts is refused.
        self.make_venue = make_venue
        self.exchange = exchange
        # user id -> the user's default paper account (the first one, created with the user, never deleted)
        self._paper_accounts: dict[str, Account] = {}
        self._paper_lookups: dict[str, asyncio.Future[Account | None]] = {}

    async def list_for_user(self, user_id: str) -> list[AccountView]:
        rows = await self.db.fetch(accounts.LISTING, user_id=user_id)
        return [AccountView.of(row, self.keybox) for row in rows]

    async def resolve(self, user_id: str, account_id: str | None) -> Account:
        """The user's account `account_id`, or their default paper account when it is None. 404 if not theirs."""
        paper = self._paper_accounts.get(user_id)
        if paper is not None and account_id in (None, paper.id):
            return paper  # every order's intake asks: skip the database round trip

        if account_id is None:
            account = await self._find_paper_account(user_id)
            if account is not None:
                # The default paper account is created with the user and never deleted, so it can be kept.
                # Other paper accounts are read every time: they can be renamed or deleted.
                if len(self._paper_accounts) >= PAPER_ACCOUNT_CACHE_SIZE:
                    self._paper_accounts.clear()
                self._paper_accounts[user_id] = account
        else:
            account = await self.db.fetch_in(lambda reader: accounts.owned(reader, user_id, account_id))
        if account is None:
            raise NotFound("Account not found.", code="ACCOUNT_NOT_FOUND", field="account_id")
        return account

    async def _find_paper_account(self, user_id: str) -> Account | None:
        """One database read per user however many requests ask at once (a burst of orders)."""
        lookup = self._paper_lookups.get(user_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self.db.read(lambda s: accounts.paper_account(s, user_id)))
            self._paper_lookups[user_id] = lookup
            lookup.add_done_callback(lambda _: self._paper_lookups.pop(user_id, None))
        return await asyncio.shield(lookup)

    async def balances(self, user_id: str, account_id: str | None) -> list[BalanceView]:
        """Free and locked balances of one of the user's accounts."""
        account = await self.resolve(user_id, account_id)
        rows = await self.db.fetch(accounts.BALANCES, account_id=account.id)
        return [BalanceView(row.asset, row.free, row.locked) for row in rows]

    async def add_binance_account(
        self, user_id: str, api_key: str, api_secret: str, label: str | None = None
    ) -> AccountView:
        """Check the key with a signed account call, then store it sealed. 422 EXCHANGE_REJECTED_KEY with the
        exchange's words if Binance refuses it, 422 EXCHANGE_UNREACHABLE if Binance cannot be asked; nothing is
        stored in either case."""
        api_key = _clean_key(api_key, "api_key", MAX_KEY_LENGTH)
        api_secret = _clean_key(api_secret, "api_secret", MAX_SECRET_LENGTH, multiline=True)
        if label is not None:
            label = clean_label(label) if label.strip() else None
        if self.make_venue is None or self.keybox is None:
            raise Conflict("Binance testnet accounts are not enabled on this server.", code="VENUE_NOT_CONFIGURED")
        keybox = self.keybox
        if await self._has_key(user_id, api_key):
            raise Conflict("This API key is already one of your accounts.", code="ACCOUNT_EXISTS", field="api_key")
        await self._probe(api_key, api_secret)

        def insert(session: Session) -> Account:
            account_id = new_id()
            # Bound to the row and the field: a ciphertext copied onto another account or field does not open.
            sealed = sealed_keys.seal(keybox, account_id, api_key, api_secret)
            detail = {"account_id": account_id, "label": label or BINANCE_TESTNET_LABEL, "key": api_key_hint(api_key)}
            record_in(session, user_id, ActivityKind.EXCHANGE_KEY_ADDED, detail=detail)
            return accounts.add(
                session,
                Account(
                    id=account_id,
                    user_id=user_id,
                    venue=Venue.BINANCE_TESTNET,
                    label=label or BINANCE_TESTNET_LABEL,
                    created_at=now_ms(),
                    api_key_hint=api_key_hint(api_key),
                    api_key_enc=sealed.api_key_enc,
                    api_secret_enc=sealed.api_secret_enc,
                    key_id=sealed.key_id,
                    seal_version=sealed.seal_version,
                ),
            )

        account = await self.db.write(insert)
        log.info("user %s added Binance testnet account %s (key %s)", user_id, account.id, account.api_key_hint)
        if self.exchange is not None:
            self.exchange.account_added(account.id)  # balances and open orders show before the first order
        return AccountView.of(account)

    async def add_paper_account(self, user_id: str, label: str, balances: Mapping[str, Decimal]) -> AccountView:
        """Another paper account with its own balances; at most MAX_PAPER_ACCOUNTS per user (409
        TOO_MANY_PAPER_ACCOUNTS). The paper engine loads its balances when its first order arrives."""
        label = clean_label(label)

        def insert(session: Session) -> Account:
            accounts.lock_owner(session, user_id)  # a concurrent creation waits here, then counts this one
            owned = accounts.list_for_user(session, user_id)
            if sum(1 for a in owned if a.venue == Venue.PAPER) >= MAX_PAPER_ACCOUNTS:
                raise Conflict(
                    f"At most {MAX_PAPER_ACCOUNTS} paper accounts per user: delete one first.",
                    code="TOO_MANY_PAPER_ACCOUNTS",
                )
            return create_paper_account(session, user_id, balances, label)

        account = await self.db.write(insert)
        log.info("user %s added paper account %s", user_id, account.id)
        return AccountView.of(account)

    async def rename_account(self, user_id: str, account_id: str, label: str) -> AccountView:
        """Give one of the user's accounts a new label (404 if not theirs)."""
        label = clean_label(label)

        def rename(session: Session) -> Account:
            account = accounts.get_owned(session, user_id, account_id)
            if account is None:
                raise NotFound("Account not found.", code="ACCOUNT_NOT_FOUND", field="account_id")
            account.label = label
            session.add(account)
            return account

        account = await self.db.write(rename)
        self._paper_accounts.pop(user_id, None)  # the cached default may carry the old label
        return AccountView.of(account, self.keybox)

    async def delete_account(self, user_id: str, account_id: str) -> None:
        """Soft-delete one of the user's accounts (404 if not theirs). The default (first) paper account stays (409
        PAPER_ACCOUNT_REQUIRED); an account with open orders stays (409 ACCOUNT_HAS_OPEN_ORDERS). The sealed keys
        are erased with it and its venue client is closed: a deleted account never trades again."""

        def delete(session: Session) -> None:
            account = accounts.get_owned(session, user_id, account_id)
            if account is None:
                raise NotFound("Account not found.", code="ACCOUNT_NOT_FOUND", field="account_id")
            default = accounts.paper_account(session, user_id)
            if default is not None and default.id == account.id:
                raise Conflict("The default paper account cannot be deleted.", code="PAPER_ACCOUNT_REQUIRED")
            # Checked in the deleting transaction, so an order accepted just before is seen.
            if orders.count_open_for_account(session, account.id):
                raise Conflict("Cancel the account's open orders before deleting it.", code="ACCOUNT_HAS_OPEN_ORDERS")
            account.deleted_at = now_ms()
            account.api_key_enc = account.api_secret_enc = None
            session.add(account)
            detail = {"account_id": account.id, "label": account.label, "key": account.api_key_hint or ""}
            record_in(session, user_id, ActivityKind.EXCHANGE_KEY_REMOVED, detail=detail)

        await self.db.write(delete)
        if self.exchange is not None:
            await self.exchange.close_account(account_id)

    async def credentials(self, account: Account) -> tuple[str, str]:
        """(api_key, api_secret) of an exchange account, decrypted for its venue adapter only. Never log them.
        409 ACCOUNT_HAS_NO_KEY without keys, 409 ACCOUNT_NEEDS_NEW_KEY when the stored key cannot be opened."""
        if self.keybox is None or not (account.api_key_enc and account.api_secret_enc and account.key_id):
            raise Conflict("This account has no API key.", code="ACCOUNT_HAS_NO_KEY")
        try:
            return sealed_keys.open_keys(self.keybox, account)
        except sealed_keys.KeyUnavailable:
            raise Conflict(
                "This account's API key can no longer be read (the server's encryption key changed). "
                "Remove the account and add the key again.",
                code="ACCOUNT_NEEDS_NEW_KEY",
            ) from None

    async def _has_key(self, user_id: str, api_key: str) -> bool:
        """Whether the user already has an account with this key (ciphertexts are randomised: compare opened)."""
        rows = await self.db.read(lambda s: accounts.list_for_user(s, user_id))
        hint = api_key_hint(api_key)
        for row in rows:
            if row.api_key_hint == hint and row.venue == Venue.BINANCE_TESTNET:
                try:
                    key, _ = await self.credentials(row)
                except Conflict:  # sealed under a key this server no longer has
                    continue
                if key == api_key:
                    return True
        return False

    async def _probe(self, api_key: str, api_secret: str) -> None:
        """Ask the exchange whether it accepts the key; always closes the probe venue."""
        assert self.make_venue is not None
        venue = self.make_venue(api_key, api_secret)
        try:
            await venue.check_credentials()
        except VenueRejected as exc:
            raise ValidationFailed(exc.message, code="EXCHANGE_REJECTED_KEY", field="api_key") from None
        except VenueThrottled as exc:
            raise Throttled(
                "Binance testnet asked us to slow down; try adding the key again shortly.",
                retry_after=max(1, math.ceil(exc.retry_after)),
                code="EXCHANGE_THROTTLED",
            ) from None
        except VenueUnavailable:
            raise ValidationFailed(
                "Binance testnet could not be reached to check the key; nothing was saved. Try again later.",
                code="EXCHANGE_UNREACHABLE",
                field="api_key",
            ) from None
        finally:
            await venue.close()
