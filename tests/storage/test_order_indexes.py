"""Each order and fill read finds its index: open-order queries carry the partial index's exact predicate
(status_in), a user's open orders are read through their accounts, and an account's fills through its user."""

from __future__ import annotations

import pytest
from sqlalchemy import ColumnElement, Select, and_
from sqlalchemy import select as sa_select

from storage.db import create_db_engine
from storage.models import Order
from storage.repositories import statements
from storage.repositories.orders import (
    OPEN_STATUSES,
    accounts_with_orders,
    status_in,
    user_fills_query,
    user_orders_query,
)

ORDERS = Order.__table__  # type: ignore[attr-defined]


def plan(database_url: str, query: Select, **values: object) -> str:  # type: ignore[type-arg]
    """The database's plan for `query` with its named parameters bound to `values` (as the app binds them, at the
    driver); PostgreSQL told to avoid table scans, so an empty table still shows which index could serve it."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            compiled = query.compile(engine, compile_kwargs={"render_postcompile": True})
            bound = {**compiled.params, **values}
            if engine.dialect.name == "sqlite":
                params = tuple(bound[name] for name in compiled.positiontup or ())
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
                return "\n".join(str(row[-1]) for row in rows)
            connection.exec_driver_sql("SET enable_seqscan = off")
            rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", bound)
            return "\n".join(str(row[0]) for row in rows)
    finally:
        engine.dispose()


def where(*terms: ColumnElement[bool]) -> Select:  # type: ignore[type-arg]
    return sa_select(ORDERS.c.id).where(and_(*terms)).order_by(ORDERS.c.id.desc()).limit(100)


@pytest.mark.parametrize(
    ("terms", "index"),
    [
        ((ORDERS.c.account_id == "a", status_in(OPEN_STATUSES)), "ix_orders_open_account_id"),
        ((ORDERS.c.account_id == "a", status_in(("OPEN", "PARTIALLY_FILLED"))), "ix_orders_open_account_id"),
        ((ORDERS.c.account_id == "a",), "ix_orders_account_id"),
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


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        # A user's orders are read one account at a time (storage/repositories/orders.py, list_for_user).
        ({"statuses": OPEN_STATUSES}, "ix_orders_open_account_id"),
        ({"statuses": ("OPEN",), "symbol": "BTCUSDT"}, "ix_orders_open_account_id"),
        ({}, "ix_orders_account_id"),
        ({"statuses": ("FILLED", "CANCELED"), "before": "01K"}, "ix_orders_account_id"),
        ({"symbol": "ETHUSDT"}, "ix_orders_account_id"),
    ],
)
def test_a_users_order_listing_finds_its_index(database_url: str, filters: dict[str, object], index: str) -> None:
    shape = {"statuses": filters.get("statuses"), "by_symbol": "symbol" in filters, "paged": "before" in filters}
    query = user_orders_query(**shape)  # type: ignore[arg-type]
    values = {"symbol": None, "before": None, **filters}
    shown = plan(database_url, query, user_id="u", account_id="a", limit=100, **values)
    assert index in shown
    assert not sorts(shown)  # the index walks the account's orders newest first: nothing to sort


@pytest.mark.parametrize("live_only", [False, True])
def test_the_accounts_a_listing_reads_are_found_by_index_probes(database_url: str, live_only: bool) -> None:
    shown = plan(database_url, accounts_with_orders(live_only=live_only), user_id="u")
    assert "ix_accounts_user_id" in shown
    assert "SCAN orders" not in shown and "Seq Scan on orders" not in shown


def sorts(shown: str) -> bool:
    return "TEMP B-TREE" in shown or "Sort" in shown


def test_a_statement_reads_an_accounts_orders_as_an_id_range_without_sorting(database_url: str) -> None:
    query = sa_select(statements.Order).where(*statements._order_range("u", "a", 0, 10))
    shown = plan(database_url, query.order_by(statements.Order.id).limit(100))
    assert "ix_orders_account_id" in shown
    assert not sorts(shown)


def test_a_statement_reads_an_accounts_fills_by_the_users_index(database_url: str) -> None:
    query = sa_select(statements.Fill).where(*statements._fill_range("u", "a", 0, 10))
    assert "ix_fills_user_ts" in plan(database_url, query.order_by(statements.Fill.ts).limit(100))


@pytest.mark.parametrize(("account_id", "symbol"), [(None, None), ("a", "BTCUSDT")])
def test_a_users_fills_are_listed_by_walking_their_index(database_url: str, account_id: str, symbol: str) -> None:
    shown = plan(database_url, user_fills_query("u", account_id=account_id, symbol=symbol, limit=100))
    assert "ix_fills_user_ts" in shown
    # SQLite orders only fills of the same millisecond by id ("RIGHT PART"), never all of the user's fills.
    assert "TEMP B-TREE FOR ORDER BY" not in shown
