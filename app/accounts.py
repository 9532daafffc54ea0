"""Trading accounts (where orders go): the paper account every user gets, and Binance testnet accounts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session

from app.domain import Venue
from app.errors import NotFound
from app.ids import new_id, now_ms
from storage.db import Database
from storage.models import Account
from storage.repositories import accounts

PAPER_LABEL = "Paper"


@dataclass(frozen=True, slots=True)
class AccountView:
    """What a user may see of an account: never the key material."""

    id: str
    venue: str
    label: str
    created_at: int
    api_key_hint: str | None

    @classmethod
    def of(cls, account: Account) -> AccountView:
        return cls(account.id, account.venue, account.label, account.created_at, account.api_key_hint)


@dataclass(frozen=True, slots=True)
class BalanceView:
    asset: str
    free: Decimal
    locked: Decimal


def create_paper_account(session: Session, user_id: str, balances: Mapping[str, Decimal]) -> Account:
    """A new paper account with its starting balances, in the caller's transaction."""
    account = accounts.add(
        session,
        Account(id=new_id(), user_id=user_id, venue=Venue.PAPER, label=PAPER_LABEL, created_at=now_ms()),
    )
    accounts.set_balances(session, account.id, balances)
    return account


class AccountService:
    """Lists and resolves a user's accounts; every lookup is scoped to the user."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_for_user(self, user_id: str) -> list[AccountView]:
        rows = await self.db.read(lambda s: accounts.list_for_user(s, user_id))
        return [AccountView.of(row) for row in rows]

    async def resolve(self, user_id: str, account_id: str | None) -> Account:
        """The user's account `account_id`, or their paper account when it is None. 404 if not theirs."""

        def find(session: Session) -> Account | None:
            if account_id is None:
                return accounts.paper_account(session, user_id)
            return accounts.get_owned(session, user_id, account_id)

        account = await self.db.read(find)
        if account is None:
            raise NotFound("Account not found.", code="ACCOUNT_NOT_FOUND", field="account_id")
        return account

    async def balances(self, user_id: str, account_id: str | None) -> list[BalanceView]:
        """Free and locked balances of one of the user's accounts."""
        account = await self.resolve(user_id, account_id)
        rows = await self.db.read(lambda s: accounts.balances(s, account.id))
        return [BalanceView(row.asset, row.free, row.locked) for row in rows]
