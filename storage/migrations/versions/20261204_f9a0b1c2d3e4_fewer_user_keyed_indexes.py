"""orders: open orders indexed by account only (drop ix_orders_open_user_id); fills: drop ix_fills_account_ts

Under load a commit holds about one order from each of many users, and every user- or account-keyed index adds a
leaf page per user to each commit's write-ahead log (docs/orders.md, "Speed", 2026-12-04). A user's open orders are
read through the user's accounts (ix_orders_open_account_id); every read of an account's fills also names its user,
so ix_fills_user_ts serves it (SQLite already chose that index for them).

Revision ID: f9a0b1c2d3e4
Revises: e8f9a0b1c2d3
Create Date: 2026-12-04 11:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f9a0b1c2d3e4"
down_revision: str | None = "e8f9a0b1c2d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_ORDER = "status IN ('PENDING', 'OPEN', 'PARTIALLY_FILLED')"


def upgrade() -> None:
    op.drop_index("ix_orders_open_user_id", table_name="orders")
    op.drop_index("ix_fills_account_ts", table_name="fills")


def downgrade() -> None:
    op.create_index("ix_fills_account_ts", "fills", ["account_id", "ts"])
    is_open = sa.text(OPEN_ORDER)
    op.create_index(
        "ix_orders_open_user_id", "orders", ["user_id", "id"], sqlite_where=is_open, postgresql_where=is_open
    )
