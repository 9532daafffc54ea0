"""Statement reads: one account's fills and orders in a time range, counted, then read in pages oldest first
(keyset on (time, id), so a long export never holds the range in memory nor re-reads skipped rows)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select
from ulid import ULID

from storage.models import Fill, Order

Cursor = tuple[int, str]
"""(time, id) of the last row of the previous page (orders page by id alone)."""

ID_TIME_SLACK_MS = 60_000


def lowest_id_at(millis: int) -> str:
    """The smallest ULID of a row created at `millis` (clamped to ULID's 48-bit time): `id >= lowest_id_at(t)`
    selects the rows whose ids were made at or after t."""
    millis = min(max(millis, 0), (1 << 48) - 1)
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + bytes(10)))


def count_fills(session: Session, user_id: str, account_id: str, start: int, end: int) -> int:
    query = select(func.count()).select_from(Fill).where(*_fill_range(user_id, account_id, start, end))
    return int(session.exec(query).one())


def fills_page(
    session: Session, user_id: str, account_id: str, start: int, end: int, after: Cursor | None, limit: int
) -> list[Fill]:
    query = select(Fill).where(*_fill_range(user_id, account_id, start, end))
    if after is not None:
        query = query.where(or_(col(Fill.ts) > after[0], and_(col(Fill.ts) == after[0], col(Fill.id) > after[1])))
    return list(session.exec(query.order_by(col(Fill.ts), col(Fill.id)).limit(limit)))


def count_orders(session: Session, user_id: str, account_id: str, start: int, end: int) -> int:
    query = select(func.count()).select_from(Order).where(*_order_range(user_id, account_id, start, end))
    return int(session.exec(query).one())


def orders_page(
    session: Session, user_id: str, account_id: str, start: int, end: int, after: Cursor | None, limit: int
) -> list[Order]:
    """Oldest first by id, which is (created_at, id) order: an order's created_at is its id's millisecond."""
    query = select(Order).where(*_order_range(user_id, account_id, start, end))
    if after is not None:
        query = query.where(col(Order.id) > after[1])
    return list(session.exec(query.order_by(col(Order.id)).limit(limit)))


def _fill_range(user_id: str, account_id: str, start: int, end: int) -> tuple[ColumnElement[bool], ...]:
    return (
        col(Fill.user_id) == user_id,
        col(Fill.account_id) == account_id,
        col(Fill.ts) >= start,
        col(Fill.ts) < end,
    )


def _order_range(user_id: str, account_id: str, start: int, end: int) -> tuple[ColumnElement[bool], ...]:
    """Read as an id range of the account's index (ix_orders_account_id). Orders stored before created_at was the
    id's millisecond may differ from it by a few; the id range is widened by ID_TIME_SLACK_MS and created_at keeps
    the range exact."""
    return (
        col(Order.account_id) == account_id,
        col(Order.id) >= lowest_id_at(start - ID_TIME_SLACK_MS),
        col(Order.id) < lowest_id_at(end + ID_TIME_SLACK_MS),
        col(Order.user_id) == user_id,
        col(Order.created_at) >= start,
        col(Order.created_at) < end,
    )
