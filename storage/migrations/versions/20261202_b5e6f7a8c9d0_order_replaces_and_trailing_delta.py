"""order replaces (modify/replace), trailing delta (trailing stops), oco_group index (stand-alone OCO)

Revision ID: b5e6f7a8c9d0
Revises: f3c4d5e6a7b8
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'b5e6f7a8c9d0'
down_revision: str | None = 'f3c4d5e6a7b8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_replaces'), ['replaces'], unique=False)
        batch_op.add_column(sa.Column('trailing_delta_bps', sa.Integer(), nullable=True))
        # Stand-alone OCO legs are read by group (paper executor, exchange worker).
        batch_op.create_index(batch_op.f('ix_orders_oco_group'), ['oco_group'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_oco_group'))
        batch_op.drop_column('trailing_delta_bps')
        batch_op.drop_index(batch_op.f('ix_orders_replaces'))
        batch_op.drop_column('replaces')
