"""equity snapshots (one row per account per minute) and the indexes of account statements

Revision ID: e2b3c4d5f6a7
Revises: a4d5e6f7b8c9
Create Date: 2026-12-02 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = 'e2b3c4d5f6a7'
down_revision: str | None = 'a4d5e6f7b8c9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'equity_snapshots',
        sa.Column('account_id', sa.String(length=26), nullable=False),
        sa.Column('bucket', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('equity', storage.types.ExactDecimal(length=64), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.PrimaryKeyConstraint('account_id', 'bucket'),
    )
    op.create_index('ix_orders_account_created', 'orders', ['account_id', 'created_at'], unique=False)
    op.create_index('ix_fills_account_ts', 'fills', ['account_id', 'ts'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_fills_account_ts', table_name='fills')
    op.drop_index('ix_orders_account_created', table_name='orders')
    op.drop_table('equity_snapshots')
