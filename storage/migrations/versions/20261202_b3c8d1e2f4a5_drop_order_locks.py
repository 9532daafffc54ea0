"""drop per-order lock columns: the paper venue's ledger keeps locks in memory and derives them from open orders

Revision ID: b3c8d1e2f4a5
Revises: a71946bf3694
Create Date: 2026-12-02 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = 'b3c8d1e2f4a5'
down_revision: str | None = 'a71946bf3694'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('locked_amount')
        batch.drop_column('locked_asset')


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('locked_asset', sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column('locked_amount', storage.types.ExactDecimal(), nullable=False, server_default='0')
        )
