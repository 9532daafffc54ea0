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

# The two changes, made to each function's text as its migration created it; the rest of the bodies is unchanged.
BY_KEY = (
    # the lock: `IN (SELECT …)` became a hash semi-join over every user
    ("PERFORM 1 FROM users WHERE id IN (", "PERFORM 1 FROM users WHERE id = ANY(ARRAY("),
    (") ORDER BY id", ")) ORDER BY id"),
    # the numbering: joined to `counts` alone, a hash join over every user
    (
        "FROM counts AS c WHERE u.id = c.user_id\n",
        "FROM counts AS c\n        WHERE u.id = c.user_id AND u.id = ANY(ARRAY(SELECT c2.user_id FROM counts AS c2))\n",
    ),
)
EARLIER = ("20261205_d4e5f6a7b8c9_number_events_json.py", "20261205_c3d4e5f6a7b8_number_staged_events.py")


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for migration in EARLIER:
            op.execute(by_key(_function_of(migration)))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for migration in EARLIER:
            op.execute(_function_of(migration))


def by_key(function: str) -> str:
    """`function` with its users found through the primary key (each fragment must be there once)."""
    for old, new in BY_KEY:
        assert function.count(old) == 1, f"{old!r} is not in the function once"
        function = function.replace(old, new)
    return function


def _function_of(migration: str) -> str:
    """The function as an earlier migration created it (its FUNCTION text)."""
    path = Path(__file__).with_name(migration)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.FUNCTION)
