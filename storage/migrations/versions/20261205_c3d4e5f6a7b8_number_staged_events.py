"""PostgreSQL: tw_number_staged_events(), which numbers and stores a transaction's staged events in one call

storage/repositories/numbered_commit.py copies a transaction's events, unnumbered, into the connection's temporary
table tw_event_stage, then sends `SELECT … FROM tw_number_staged_events(); COMMIT` as one message: the users' rows
are locked in id order (FOR NO KEY UPDATE, what the numbering UPDATE takes), numbered and the events inserted with
their seqs, the stage emptied, and the transaction committed, with no round trip while the locks are held. A function,
not a prepared statement: PL/pgSQL keeps its plans for the session, and psycopg deallocates every prepared
statement of a connection on a rollback. An event whose user has no row gets a NULL seq, which events.seq refuses.
SQLite: nothing (its writes are serialised anyway).

Revision ID: c3d4e5f6a7b8
Revises: b2c3d4e5f6a7
Create Date: 2026-12-05 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c3d4e5f6a7b8"
down_revision: str | None = "b2c3d4e5f6a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION tw_number_staged_events() RETURNS TABLE (numbered_user varchar, base_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM users WHERE id IN (SELECT s.user_id FROM tw_event_stage AS s) ORDER BY id FOR NO KEY UPDATE;
    RETURN QUERY
    WITH staged AS (DELETE FROM tw_event_stage RETURNING *),
    counts AS (SELECT s.user_id, count(*) AS n FROM staged AS s GROUP BY s.user_id),
    numbered AS (
        UPDATE users AS u SET last_seq = u.last_seq + c.n FROM counts AS c WHERE u.id = c.user_id
        RETURNING u.id, u.last_seq - c.n AS base
    ),
    stored AS (
        INSERT INTO events (user_id, seq, type, payload, ts)
        SELECT s.user_id, n.base + row_number() OVER (PARTITION BY s.user_id ORDER BY s.ord), s.type, s.payload, s.ts
        FROM staged AS s LEFT JOIN numbered AS n ON n.id = s.user_id
    )
    SELECT n.id::varchar, n.base::bigint FROM numbered AS n;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tw_number_staged_events()")
