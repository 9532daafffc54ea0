"""Sealed exchange keys of accounts: the rows a start-up re-seal reads, and the compare-and-set that rewrites them."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import Account


def with_sealed_keys(session: Session) -> list[Account]:
    """Every live account that holds sealed keys."""
    query = select(Account).where(col(Account.api_key_enc).is_not(None), col(Account.deleted_at).is_(None))
    return list(session.exec(query.order_by(col(Account.id))))


def replace_sealed_keys(
    session: Session,
    account_id: str,
    *,
    expected: tuple[str | None, str | None],
    api_key_enc: str,
    api_secret_enc: str,
    key_id: str,
    seal_version: int,
) -> bool:
    """Store re-sealed keys if the row still holds the `expected` ciphertexts and is not deleted (a concurrent
    change or delete wins). Returns whether the row was changed."""
    statement = (
        update(Account)
        .where(
            col(Account.id) == account_id,
            col(Account.api_key_enc) == expected[0],
            col(Account.api_secret_enc) == expected[1],
            col(Account.deleted_at).is_(None),
        )
        .values(api_key_enc=api_key_enc, api_secret_enc=api_secret_enc, key_id=key_id, seal_version=seal_version)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]
