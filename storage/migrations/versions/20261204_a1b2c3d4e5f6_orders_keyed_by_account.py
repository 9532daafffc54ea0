"""orders: one (account_id, id) index instead of ix_orders_user_id (user_id, id) and ix_orders_account_created

Under load a commit holds about one order from each of many users, and every user- or account-keyed index adds a
leaf page per user to each commit's write-ahead log (docs/orders.md, "Speed", 2026-12-04). A user's orders are read
through the user's accounts and merged (storage/repositories/orders.py); a statement's time range is read as an id
range, since an order's created_at is its id's millisecond (app/ids.py; older rows are filtered by created_at too).

Revision ID: a1b2c3d4e5f6
Revises: f9a0b1c2d3e4
Create Date: 2026-12-04 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1b2c3d4e5f6"
down_revision: str | None = "f9a0b1c2d3e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_ORDER = "status IN ('PENDING', 'OPEN', 'PARTIALLY_FILLED')"


def upgrade() -> None:
    op.create_index("ix_orders_account_id", "orders", ["account_id", "id"])
    # For an account's open orders SQLite (without ANALYZE statistics) rates this partial index and the full one the
    # same and keeps the one created last: re-created here, after the full one, open-order reads use it
    # (tests/storage/test_order_indexes.py checks every read's plan).
    _recreate_open_orders_index()
    op.drop_index("ix_orders_user_id", table_name="orders")
    op.drop_index("ix_orders_account_created", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_account_created", "orders", ["account_id", "created_at"])
    op.create_index("ix_orders_user_id", "orders", ["user_id", "id"])
    op.drop_index("ix_orders_account_id", table_name="orders")


def _recreate_open_orders_index() -> None:
    op.drop_index("ix_orders_open_account_id", table_name="orders")
    is_open = sa.text(OPEN_ORDER)
    op.create_index(
        "ix_orders_open_account_id", "orders", ["account_id", "id"], sqlite_where=is_open, postgresql_where=is_open
    )
