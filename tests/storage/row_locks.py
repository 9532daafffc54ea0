"""What a PostgreSQL statement has written by the time it waits for a user's row: the statements that number events
(storage/repositories/journal.py, engine_statement.py) must write everything else before they lock the users' rows,
so that intake groups and engine batches numbering the same users hold those locks only for the numbering."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from sqlalchemy import text

from storage.db import Database

T = TypeVar("T")

# A backend has a transaction id once its transaction has written a row (or locked one); a statement waiting for a
# user's row with none has written nothing yet.
_WAITING = text(
    "SELECT backend_xid IS NOT NULL FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND query LIKE :start AND pid <> pg_backend_pid()"
)


async def written_before_waiting(db: Database, user_id: str, statement: Awaitable[T], start: str) -> tuple[bool, T]:
    """Run `statement` (whose SQL begins with `start`) while another transaction holds `user_id`'s row as the
    numbering locks it (FOR NO KEY UPDATE, which the orders' foreign-key checks do not wait for). Once the statement
    waits for that row: whether it had written anything by then. Then the row is let go; the statement's result."""
    with db.engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM users WHERE id = :id FOR NO KEY UPDATE"), {"id": user_id})
        running = asyncio.ensure_future(statement)
        try:
            written = None
            for _ in range(500):
                with db.engine.connect() as watcher:
                    written = watcher.execute(_WAITING, {"start": f"{start}%"}).scalar()
                if written is not None or running.done():
                    break
                await asyncio.sleep(0.01)
            assert written is not None, "the statement never waited for the user's row"
        finally:
            holder.rollback()
    return written, await running
