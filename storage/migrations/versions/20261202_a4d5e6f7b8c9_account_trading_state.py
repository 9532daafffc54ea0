"""account trading state

The kill switch of an account: ACTIVE (trade freely), REDUCE_ONLY (only orders that shrink a position) or HALTED
(no orders; open ones were cancelled). Existing accounts are ACTIVE.

Revision ID: a4d5e6f7b8c9
Revises: d1a2b3c4e5f6
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'a4d5e6f7b8c9'
down_revision: str | None = 'd1a2b3c4e5f6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'trading_state', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='ACTIVE', nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('trading_state')
