"""orders: (user_id, id), and (user_id, id), (account_id, id) over open orders only, instead of (user_id, status)
and (account_id, status); fills: the venue trade id's unique index only over fills that have one

Each transaction wrote ~1.6 pages per user of each (…, status) index (an order's entry moves from PENDING to its
final status), and a page per account of the fills' trade-id index for paper fills that have no trade id: on
SQLite ~35 % of the pages an order cycle writes (docs/orders.md "Speed"). The open-order indexes stay a few pages;
(user_id, id) serves a user's order history newest first, a page at a time, without a sort.

Revision ID: e8f9a0b1c2d3
Revises: d7e8f9a0b1c2
Create Date: 2026-12-03 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e8f9a0b1c2d3"
down_revision: str | None = "d7e8f9a0b1c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_ORDER = "status IN ('PENDING', 'OPEN', 'PARTIALLY_FILLED')"
HAS_TRADE_ID = "venue_trade_id IS NOT NULL"


def upgrade() -> None:
    op.drop_index("ix_orders_user_status", table_name="orders")
    op.drop_index("ix_orders_account_status", table_name="orders")
    op.create_index("ix_orders_user_id", "orders", ["user_id", "id"])
    is_open = sa.text(OPEN_ORDER)
    for column in ("user_id", "account_id"):
        name = f"ix_orders_open_{column}"
        op.create_index(name, "orders", [column, "id"], sqlite_where=is_open, postgresql_where=is_open)
    with op.batch_alter_table("fills") as batch:  # SQLite: a table copy (a table constraint cannot be dropped)
        batch.drop_constraint("uq_fills_account_venue_trade", type_="unique")
    where = sa.text(HAS_TRADE_ID)
    op.create_index(
        "uq_fills_account_venue_trade",
        "fills",
        ["account_id", "venue_trade_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("uq_fills_account_venue_trade", table_name="fills")
    with op.batch_alter_table("fills") as batch:
        batch.create_unique_constraint("uq_fills_account_venue_trade", ["account_id", "venue_trade_id"])
    for column in ("user_id", "account_id"):
        op.drop_index(f"ix_orders_open_{column}", table_name="orders")
    op.drop_index("ix_orders_user_id", table_name="orders")
    op.create_index("ix_orders_account_status", "orders", ["account_id", "status"])
    op.create_index("ix_orders_user_status", "orders", ["user_id", "status"])
