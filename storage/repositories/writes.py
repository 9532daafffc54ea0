"""Bulk writes of the execution core: `executemany` statements, no ORM objects (each costs more than the row's
SQL). The hottest go to the driver directly (storage/bulk.py); upserts use ON CONFLICT … DO UPDATE, which SQLite and
PostgreSQL both have."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete
from sqlalchemy import event as sa_event
from sqlmodel import Session

from storage import bulk
from storage.models import Balance, Fill, Order, Position

ORDERS: Table = Order.__table__  # type: ignore[attr-defined]
FILLS: Table = Fill.__table__  # type: ignore[attr-defined]
BALANCES: Table = Balance.__table__  # type: ignore[attr-defined]
POSITIONS: Table = Position.__table__  # type: ignore[attr-defined]

_PENDING_ORDERS = "tradewind_pending_order_rows"


def insert_orders(session: Session, rows: list[dict[str, Any]]) -> None:
    bulk.insert_rows(session.connection(), ORDERS, rows)


def stage_order(session: Session, row: dict[str, Any]) -> None:
    """Queue an order row; every staged row of the transaction goes out in one executemany before it commits
    (group commit: many intake requests share one transaction). The row is not changed, so a unit can run again
    with the same row when its group failed or its connection was lost."""
    session.info.setdefault(_PENDING_ORDERS, []).append(row)


def flush_staged_orders(session: Session) -> None:
    rows = session.info.pop(_PENDING_ORDERS, None)
    if rows:
        insert_orders(session, rows)


def update_orders(session: Session, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """`rows` carry `_key` (the order id) and the new values of `columns`."""
    bulk.update_rows(session.connection(), ORDERS, "id", columns, rows)


def insert_fills(session: Session, rows: list[dict[str, Any]]) -> None:
    bulk.insert_rows(session.connection(), FILLS, rows)


def upsert_balances(session: Session, rows: list[dict[str, Any]]) -> None:
    """`rows` carry account_id, asset, free and locked."""
    bulk.upsert_rows(session.connection(), BALANCES, ("account_id", "asset"), rows)


def delete_balances(session: Session, rows: list[dict[str, Any]]) -> None:
    """`rows` carry `_account` and `_asset`."""
    statement = delete(BALANCES).where(
        BALANCES.c.account_id == bindparam("_account"), BALANCES.c.asset == bindparam("_asset")
    )
    session.connection().execute(statement, rows)


def upsert_positions(session: Session, rows: list[dict[str, Any]]) -> None:
    """`rows` carry account_id, symbol, quantity, cost and realized_pnl."""
    bulk.upsert_rows(session.connection(), POSITIONS, ("account_id", "symbol"), rows)


@sa_event.listens_for(Session, "before_commit")
def _insert_staged_orders(session: Session) -> None:
    flush_staged_orders(session)


@sa_event.listens_for(Session, "after_rollback")
def _forget_staged_orders(session: Session) -> None:
    session.info.pop(_PENDING_ORDERS, None)
