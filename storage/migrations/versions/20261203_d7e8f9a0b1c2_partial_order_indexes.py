"""partial indexes for orders.parent_id, oco_group and replaces (only the rows where they are set)

Most orders have none of them: the full indexes took an entry per order, and on SQLite a page written at every
intake commit (docs/orders.md "Speed").

Revision ID: d7e8f9a0b1c2
Revises: c6d7e8f9a0b1
Create Date: 2026-12-03 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7e8f9a0b1c2"
down_revision: str | None = "c6d7e8f9a0b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("parent_id", "oco_group", "replaces")


def upgrade() -> None:
    for column in COLUMNS:
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(f"ix_orders_{column}", table_name="orders")
        op.create_index(f"ix_orders_{column}", "orders", [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_orders_{column}", table_name="orders")
        op.create_index(f"ix_orders_{column}", "orders", [column])
