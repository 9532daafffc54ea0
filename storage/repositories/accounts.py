"""Trading accounts and their balances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.driver_reads import DriverRead, DriverReader
from storage.models import Account, Balance, User


def list_for_user(session: Session, user_id: str) -> list[Account]:
    query = (
        select(Account)
        .where(Account.user_id == user_id, col(Account.deleted_at).is_(None))
        .order_by(col(Account.created_at), col(Account.id))
    )
    return list(session.exec(query))


_ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
# Built once: constructing an ORM select per call and running it through the ORM cost more than SQLite's work.
_LISTING = (
    sa_select(_ACCOUNTS)
    .where(_ACCOUNTS.c.user_id == bindparam("user_id"), _ACCOUNTS.c.deleted_at.is_(None))
    .order_by(_ACCOUNTS.c.created_at, _ACCOUNTS.c.id)
)


AccountRow = Any  # an accounts row read at the driver: the columns as attributes, like an Account

# What the account listing shows, read on every page load and by bots: the user's accounts as plain rows (attribute
# access like an Account, no ORM identity), oldest first. `await db.fetch(LISTING, user_id=…)`.
LISTING = DriverRead(_LISTING)

_BALANCES = Balance.__table__  # type: ignore[attr-defined]
# An account's balances by asset, polled by bots and every open page. `await db.fetch(BALANCES, account_id=…)`.
BALANCES = DriverRead(
    sa_select(_BALANCES.c.asset, _BALANCES.c.free, _BALANCES.c.locked)
    .where(_BALANCES.c.account_id == bindparam("account_id"))
    .order_by(_BALANCES.c.asset)
)


_OWNED = DriverRead(
    sa_select(_ACCOUNTS).where(
        _ACCOUNTS.c.id == bindparam("account_id"),
        _ACCOUNTS.c.user_id == bindparam("user_id"),
        _ACCOUNTS.c.deleted_at.is_(None),
    )
)


def owned(reader: DriverReader, user_id: str, account_id: str) -> Account | None:
    """`get_owned` at the driver, for every request that names an account (an order, a read): a detached Account
    built from the row. ~60 µs in all here, against ~175 through a Session; most of it is SQLModel setting up the
    instance's ORM state (the model's `model_construct` skips that, and its attributes then fail)."""
    found = reader.rows(_OWNED, account_id=account_id, user_id=user_id)
    return Account(**found[0]._asdict()) if found else None


def get_owned(session: Session, user_id: str, account_id: str) -> Account | None:
    account = session.get(Account, account_id)
    if account is None or account.user_id != user_id or account.deleted_at is not None:
        return None
    return account


def get(session: Session, account_id: str) -> Account | None:
    return session.get(Account, account_id)


def paper_account(session: Session, user_id: str) -> Account | None:
    query = select(Account).where(
        Account.user_id == user_id, Account.venue == "paper", col(Account.deleted_at).is_(None)
    )
    return session.exec(query.order_by(col(Account.created_at))).first()


def lock_owner(session: Session, user_id: str) -> None:
    """Serialise account creation per user until the transaction ends (a row lock on PostgreSQL; SQLite has a
    single writer anyway), so two concurrent requests cannot both pass a per-user limit."""
    session.exec(select(User.id).where(User.id == user_id).with_for_update())


def add(session: Session, account: Account) -> Account:
    session.add(account)
    session.flush()
    return account


def balances(session: Session, account_id: str) -> list[Balance]:
    query = select(Balance).where(Balance.account_id == account_id).order_by(col(Balance.asset))
    return list(session.exec(query))


def balance_for_update(session: Session, account_id: str, asset: str) -> Balance:
    """The balance row (created at zero if absent). Only the account's single writer (the paper engine, or the
    exchange account's worker) changes balances, so the identity map is enough: no row lock round trip."""
    row = session.get(Balance, (account_id, asset))
    if row is None:
        row = Balance(account_id=account_id, asset=asset, free=Decimal(0), locked=Decimal(0))
        session.add(row)
        session.flush()
    return row


def set_balances(session: Session, account_id: str, amounts: Mapping[str, Decimal]) -> None:
    """Replace every balance of the account: listed assets get `free`, the others go to zero."""
    for row in balances(session, account_id):
        if row.asset not in amounts:
            session.delete(row)
    for asset, amount in amounts.items():
        row = balance_for_update(session, account_id, asset)
        row.free, row.locked = amount, Decimal(0)
        session.add(row)
    session.flush()


def active_ids_for_venue(session: Session, venue: str) -> list[str]:
    query = select(Account.id).where(Account.venue == venue, col(Account.deleted_at).is_(None))
    return list(session.exec(query))


def balance_rows(session: Session, account_ids: Sequence[str]) -> list[tuple[str, str, Decimal, Decimal]]:
    """(account id, asset, free, locked) of many accounts, in one query."""
    if not account_ids:
        return []
    table = Balance.__table__  # type: ignore[attr-defined]
    query = sa_select(table.c.account_id, table.c.asset, table.c.free, table.c.locked).where(
        table.c.account_id.in_(set(account_ids))
    )
    return [(r[0], r[1], r[2], r[3]) for r in session.execute(query)]


def owners(session: Session, account_ids: Sequence[str]) -> dict[str, str]:
    """account id -> user id."""
    if not account_ids:
        return {}
    table = Account.__table__  # type: ignore[attr-defined]
    query = sa_select(table.c.id, table.c.user_id).where(table.c.id.in_(set(account_ids)))
    return {r[0]: r[1] for r in session.execute(query)}


def restricted_trading_states(session: Session) -> dict[str, str]:
    """Account id -> trading state of every live account that is not ACTIVE (loaded once at start-up)."""
    query = sa_select(Account.id, Account.trading_state).where(  # type: ignore[call-overload]
        Account.trading_state != "ACTIVE", col(Account.deleted_at).is_(None)
    )
    return {row[0]: row[1] for row in session.execute(query)}


def set_trading_state(session: Session, account_id: str, state: str) -> str | None:
    """Store an account's trading state; returns the previous one (None if the account is gone)."""
    account = session.get(Account, account_id, with_for_update=True)
    if account is None or account.deleted_at is not None:
        return None
    previous = account.trading_state
    account.trading_state = state
    session.add(account)
    return previous
