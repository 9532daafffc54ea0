"""Statement reads: one account's fills and orders in a time range, counted, then read in pages oldest first
(keyset on (time, id), so a long export never holds the range in memory nor re-reads skipped rows)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select

from storage.models import Fill, Order

Cursor = tuple[int, str]
"""(time, id) of the last row of the previous page."""


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
    query = select(Order).where(*_order_range(user_id, account_id, start, end))
    if after is not None:
        query = query.where(
            or_(
                col(Order.created_at) > after[0],
                and_(col(Order.created_at) == after[0], col(Order.id) > after[1]),
            )
        )
    return list(session.exec(query.order_by(col(Order.created_at), col(Order.id)).limit(limit)))


def _fill_range(user_id: str, account_id: str, start: int, end: int) -> tuple[ColumnElement[bool], ...]:
    return (
        col(Fill.user_id) == user_id,
        col(Fill.account_id) == account_id,
        col(Fill.ts) >= start,
        col(Fill.ts) < end,
    )


def _order_range(user_id: str, account_id: str, start: int, end: int) -> tuple[ColumnElement[bool], ...]:
    return (
        col(Order.user_id) == user_id,
        col(Order.account_id) == account_id,
        col(Order.created_at) >= start,
        col(Order.created_at) < end,
    )
