"""orders: only client order ids a caller chose in the unique index (account_id, client_order_id)

An id Tradewind makes for an order sent without one is "tw" + the order's own id: unique by construction and found
by primary key (storage/repositories/orders.py by_client_order_id), so it needs no index entry. Under load a commit
holds about one order from each of many accounts, and each account-keyed index entry adds a leaf page per account to
its write-ahead log (docs/orders.md, "Speed"). SQLite drops a table constraint by copying the table; storage/migrate.py
runs migrations with SQLite's foreign keys checked once at the end, so the copy of a table that fills point at works.

Revision ID: b2c3d4e5f6a7
Revises: a1b2c3d4e5f6
Create Date: 2026-12-04 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2c3d4e5f6a7"
down_revision: str | None = "a1b2c3d4e5f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_orders_account_client_order_id"
CALLERS_CLIENT_ORDER_ID = "client_order_id <> ('tw' || id)"
OPEN_ORDER = "status IN ('PENDING', 'OPEN', 'PARTIALLY_FILLED')"


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(NAME, type_="unique")
    chosen = sa.text(CALLERS_CLIENT_ORDER_ID)
    op.create_index(
        NAME, "orders", ["account_id", "client_order_id"], unique=True, sqlite_where=chosen, postgresql_where=chosen
    )
    _recreate_open_orders_index()


def downgrade() -> None:
    op.drop_index(NAME, table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.create_unique_constraint(NAME, ["account_id", "client_order_id"])
    _recreate_open_orders_index()


def _recreate_open_orders_index() -> None:
    """SQLite (without ANALYZE statistics) rates this partial index and ix_orders_account_id alike for an account's
    open orders and keeps the one created last; the table copy re-creates indexes in no set order, so this one is
    made again, last (tests/storage/test_order_indexes.py checks every read's plan)."""
    op.drop_index("ix_orders_open_account_id", table_name="orders")
    is_open = sa.text(OPEN_ORDER)
    op.create_index(
        "ix_orders_open_account_id", "orders", ["account_id", "id"], sqlite_where=is_open, postgresql_where=is_open
    )
