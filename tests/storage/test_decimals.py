"""Decimal columns keep exact values on SQLite and PostgreSQL (the suite runs on both)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel import Session

from app.domain import fmt
from app.ids import new_id, now_ms
from storage.db import Database
from storage.models import Account, Balance, User

VALUES = ["0.00000001", "123456789.12345678", "0", "10000", "99999999999999999999.999999999999999999"]


@pytest.mark.parametrize("value", VALUES)
def test_decimal_round_trip_is_exact(database_url: str, value: str) -> None:
    db = Database(database_url)
    user_id, account_id = new_id(), new_id()

    def store(session: Session) -> None:
        session.add(User(id=user_id, email=f"{user_id}@x.io", password_hash="h", created_at=now_ms()))
        session.flush()
        session.add(Account(id=account_id, user_id=user_id, venue="paper", label="P", created_at=now_ms()))
        session.flush()
        session.add(Balance(account_id=account_id, asset="BTC", free=Decimal(value), locked=Decimal(value)))

    db.run_sync(store)
    row = db.run_sync(lambda s: s.get(Balance, (account_id, "BTC")))
    db.close()
    assert row is not None
    assert isinstance(row.free, Decimal)
    assert row.free == Decimal(value)
    assert fmt(row.free) == fmt(Decimal(value))


def test_floats_are_refused(database_url: str) -> None:
    db = Database(database_url)
    with pytest.raises(Exception, match="Decimal"):
        db.run_sync(
            lambda s: s.add(Balance(account_id="x", asset="BTC", free=0.1, locked=Decimal(0)))  # type: ignore[arg-type]
        )
    db.close()
