"""PostgreSQL: tw_number_events(json), which numbers and stores events given as one JSON array

An intake group's orders and first events are stored by one statement awaited on the event loop
(storage/repositories/journal.py): the orders' INSERT reads its rows from one JSON parameter, and this function numbers
and inserts the events from another. Like tw_number_staged_events (migration c3d4e5f6a7b8) it locks the users' rows in
id order (FOR NO KEY UPDATE, what the numbering UPDATE takes) before numbering, so concurrent numberers never
deadlock; an event whose user has no row gets a NULL seq, which events.seq refuses (nothing of the statement is
stored). `events` is an array of [user_id, type, payload, ts]; each user's k-th event in it gets seq base + k.
SQLite: nothing (its writes are serialised anyway).

Revision ID: d4e5f6a7b8c9
Revises: c3d4e5f6a7b8
Create Date: 2026-12-05 22:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d4e5f6a7b8c9"
down_revision: str | None = "c3d4e5f6a7b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION tw_number_events(events json) RETURNS TABLE (numbered_user varchar, base_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM users WHERE id IN (SELECT e ->> 0 FROM json_array_elements(events) AS e) ORDER BY id
    FOR NO KEY UPDATE;
    RETURN QUERY
    WITH given AS (
        SELECT e ->> 0 AS user_id, e ->> 1 AS type, e ->> 2 AS payload, (e ->> 3)::bigint AS ts, t.ord
        FROM json_array_elements(events) WITH ORDINALITY AS t(e, ord)
    ),
    counts AS (SELECT g.user_id, count(*) AS n FROM given AS g GROUP BY g.user_id),
    numbered AS (
        UPDATE users AS u SET last_seq = u.last_seq + c.n FROM counts AS c WHERE u.id = c.user_id
        RETURNING u.id, u.last_seq - c.n AS base
    ),
    stored AS (
        INSERT INTO events (user_id, seq, type, payload, ts)
        SELECT g.user_id, n.base + row_number() OVER (PARTITION BY g.user_id ORDER BY g.ord), g.type, g.payload, g.ts
        FROM given AS g LEFT JOIN numbered AS n ON n.id = g.user_id
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
        op.execute("DROP FUNCTION IF EXISTS tw_number_events(json)")
