"""account seal version

Which AES-GCM associated data an account's sealed API key and secret use: existing rows are version 1 (the account
id for both fields); the application re-seals them to version 2 (account id and field) at start-up, because only
the running application has ENCRYPTION_KEY (app/sealed_keys.py).

Revision ID: 4098ebec8a70
Revises: c4d2e6f8a9b1
Create Date: 2026-12-02 11:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4098ebec8a70'
down_revision: str | None = 'c4d2e6f8a9b1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal_version', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    # Version 2 rows do not open under version 1 rules: downgrading the code after a re-seal means adding keys again.
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('seal_version')
