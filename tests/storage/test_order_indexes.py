"""The open-order partial indexes are usable: open-order queries carry their exact predicate (status_in)."""

from __future__ import annotations

import pytest
from sqlalchemy import ColumnElement, Select, and_
from sqlalchemy import select as sa_select

from storage.db import create_db_engine
from storage.models import Order
from storage.repositories.orders import OPEN_STATUSES, status_in

ORDERS = Order.__table__  # type: ignore[attr-defined]


def plan(database_url: str, query: Select) -> str:  # type: ignore[type-arg]
    """The database's plan for `query` (values bound as the app binds them); PostgreSQL told to avoid table scans, so
    an empty table still shows which index could serve the query."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            compiled = query.compile(engine, compile_kwargs={"render_postcompile": True})
            if engine.dialect.name == "sqlite":
                params = tuple(compiled.params[name] for name in compiled.positiontup or ())
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
                return "\n".join(str(row[-1]) for row in rows)
            connection.exec_driver_sql("SET enable_seqscan = off")
            rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
            return "\n".join(str(row[0]) for row in rows)
    finally:
        engine.dispose()


def where(*terms: ColumnElement[bool]) -> Select:  # type: ignore[type-arg]
    return sa_select(ORDERS.c.id).where(and_(*terms)).order_by(ORDERS.c.id.desc()).limit(100)


@pytest.mark.parametrize(
    ("terms", "index"),
    [
        ((ORDERS.c.user_id == "u", status_in(OPEN_STATUSES)), "ix_orders_open_user_id"),
        ((ORDERS.c.account_id == "a", status_in(OPEN_STATUSES)), "ix_orders_open_account_id"),
        ((ORDERS.c.account_id == "a", status_in(("OPEN", "PARTIALLY_FILLED"))), "ix_orders_open_account_id"),
        ((ORDERS.c.user_id == "u",), "ix_orders_user_id"),
    ],
)
def test_each_order_query_finds_its_index(
    database_url: str,
    terms: tuple[ColumnElement[bool], ...],
    index: str,
) -> None:
    assert index in plan(database_url, where(*terms))


def test_status_in_binds_statuses_that_are_not_all_open() -> None:
    # Closed statuses are a plain IN over bound values; a subset of the open ones also carries the literal predicate.
    assert "IN ('PENDING'" not in str(status_in(("FILLED", "CANCELED")))
    assert "status IN ('PENDING', 'OPEN', 'PARTIALLY_FILLED')" in str(status_in(("OPEN",)))
