"""PostgreSQL: the event-numbering functions find their users through the primary key

tw_number_events(json) (migration d4e5f6a7b8c9) and tw_number_staged_events() (migration c3d4e5f6a7b8) matched the
events' users against `users` with `IN (SELECT …)` and a join: the planner estimates a JSON array (or the never
analysed staging table) at 100 rows or more and, with a few thousand users, chose a hash join over a scan of every
user, twice per call (the lock, then the numbering UPDATE): every intake group and engine batch read the whole users
table, part of it while holding the users' row locks. `id = ANY(ARRAY(…))` is estimated at 10 and looked up in
users_pkey (checked with EXPLAIN at 20,000 users: both scans become index scans). The bodies are otherwise the same.
SQLite: nothing.

Revision ID: e5f6a7b8c9d0
Revises: d4e5f6a7b8c9
Create Date: 2026-12-06 07:30:00.000000
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "e5f6a7b8c9d0"
down_revision: str | None = "d4e5f6a7b8c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUMBER_EVENTS = """
CREATE OR REPLACE FUNCTION tw_number_events(events json) RETURNS TABLE (numbered_user varchar, base_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM users WHERE id = ANY(ARRAY(SELECT e ->> 0 FROM json_array_elements(events) AS e)) ORDER BY id
    FOR NO KEY UPDATE;
    RETURN QUERY
    WITH given AS (
        SELECT e ->> 0 AS user_id, e ->> 1 AS type, e ->> 2 AS payload, (e ->> 3)::bigint AS ts, t.ord
        FROM json_array_elements(events) WITH ORDINALITY AS t(e, ord)
    ),
    counts AS (SELECT g.user_id, count(*) AS n FROM given AS g GROUP BY g.user_id),
    numbered AS (
        UPDATE users AS u SET last_seq = u.last_seq + c.n FROM counts AS c
        WHERE u.id = c.user_id AND u.id = ANY(ARRAY(SELECT c2.user_id FROM counts AS c2))
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

NUMBER_STAGED_EVENTS = """
CREATE OR REPLACE FUNCTION tw_number_staged_events() RETURNS TABLE (numbered_user varchar, base_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM users WHERE id = ANY(ARRAY(SELECT s.user_id FROM tw_event_stage AS s)) ORDER BY id
    FOR NO KEY UPDATE;
    RETURN QUERY
    WITH staged AS (DELETE FROM tw_event_stage RETURNING *),
    counts AS (SELECT s.user_id, count(*) AS n FROM staged AS s GROUP BY s.user_id),
    numbered AS (
        UPDATE users AS u SET last_seq = u.last_seq + c.n FROM counts AS c
        WHERE u.id = c.user_id AND u.id = ANY(ARRAY(SELECT c2.user_id FROM counts AS c2))
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
        op.execute(NUMBER_EVENTS)
        op.execute(NUMBER_STAGED_EVENTS)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_function_of("20261205_d4e5f6a7b8c9_number_events_json.py"))
        op.execute(_function_of("20261205_c3d4e5f6a7b8_number_staged_events.py"))


def _function_of(migration: str) -> str:
    """The function as an earlier migration created it (its FUNCTION text)."""
    path = Path(__file__).with_name(migration)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.FUNCTION)
