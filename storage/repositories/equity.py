"""Equity snapshots: written per minute bucket (the latest value wins), read for a curve, thinned with age; and the
fill columns a performance summary needs."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from storage.models import EquitySnapshot, Fill

HOUR_MS = 3_600_000


def upsert(session: Session, points: Sequence[tuple[str, int, Decimal]]) -> None:
    """(account id, minute bucket, equity): insert, or replace the bucket's value (one statement, many rows)."""
    if not points:
        return
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    rows = [{"account_id": a, "bucket": b, "equity": e} for a, b, e in points]
    insert = dialect.insert(EquitySnapshot)
    session.execute(
        insert.on_conflict_do_update(index_elements=["account_id", "bucket"], set_={"equity": insert.excluded.equity}),
        rows,
    )


def points(session: Session, account_id: str, start: int) -> list[tuple[int, Decimal]]:
    """(bucket, equity) of the account from `start` on, oldest first."""
    query = (
        select(EquitySnapshot.bucket, EquitySnapshot.equity)  # type: ignore[call-overload]
        .where(col(EquitySnapshot.account_id) == account_id, col(EquitySnapshot.bucket) >= start)
        .order_by(col(EquitySnapshot.bucket))
    )
    return [(int(bucket), equity) for bucket, equity in session.execute(query)]


def thin(session: Session, before: int) -> int:
    """Delete every snapshot older than `before` that is not the last of its account's hour. Returns the count."""
    later = aliased(EquitySnapshot)
    row = EquitySnapshot
    hour_end = col(row.bucket) - col(row.bucket) % HOUR_MS + HOUR_MS
    has_later_in_hour = exists().where(
        col(later.account_id) == col(row.account_id),
        col(later.bucket) > col(row.bucket),
        col(later.bucket) < hour_end,
    )
    result = session.execute(delete(EquitySnapshot).where(col(row.bucket) < before, has_later_in_hour))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def fill_fees(session: Session, user_id: str, account_id: str) -> list[tuple[str, Decimal, Decimal, str]]:
    """(symbol, price, fee, fee asset) of every fill of the account that paid a fee."""
    query = select(Fill.symbol, Fill.price, Fill.fee, Fill.fee_asset).where(  # type: ignore[call-overload]
        col(Fill.user_id) == user_id, col(Fill.account_id) == account_id
    )
    return [(symbol, price, fee, asset) for symbol, price, fee, asset in session.execute(query) if fee]
