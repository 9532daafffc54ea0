"""accounts.key_rejected_at: the venue refused the stored API key

Revision ID: c4d2e6f8a9b1
Revises: b3c8d1e2f4a5
Create Date: 2026-12-02 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c4d2e6f8a9b1'
down_revision: str | None = 'b3c8d1e2f4a5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('key_rejected_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('key_rejected_at')
