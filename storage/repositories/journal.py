"""A lone order's journal entry on PostgreSQL as one statement: the order row, its user's next event number and
its first event, committed together in one round trip.

Through the group commit's session the same entry is a transaction of five round trips (`BEGIN`, the order's
`INSERT`, the numbering `UPDATE … RETURNING`, the event's `INSERT`, `COMMIT`) on a writer thread: ~1.05 ms of a lone
order's ~1.3 ms acknowledgement in process (docs/orders.md, "Speed"). A statement in autocommit is its own
transaction, so all three rows are stored or none is; the event takes its seq from the numbering `UPDATE` in the same
statement, and a user row that is not there leaves the seq NULL, which fails the statement (nothing stored). Groups of
two orders or more keep the session's path: every way of writing many rows in fewer round trips measured slower.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from storage import bulk
from storage.models import Event, User
from storage.repositories.writes import ORDERS

if TYPE_CHECKING:
    from storage.db import Database

_EVENTS = Event.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]


def available(db: Database) -> bool:
    """Whether `order_with_event` can run here: PostgreSQL, whose statements are awaited on the loop."""
    return db.async_reads is not None


async def order_with_event(db: Database, row: dict[str, Any], user_id: str, type_: str, payload: str, ts: int) -> int:
    """Store the order `row` and its user's next event in one committed statement; the event's seq."""
    assert db.async_reads is not None, "PostgreSQL only (see `available`)"
    columns = tuple(row)
    params = (*bulk.row_values(ORDERS, columns, row), user_id, user_id, type_, payload, ts)
    rows = await db.async_reads.write_once(_sql(columns), params)
    return int(rows[0][0])


@cache
def _sql(columns: tuple[str, ...]) -> str:
    values = ", ".join("%s" for _ in columns)
    # Names from the models' metadata, values bound: nothing from a request is spliced into the text.
    return (
        f'WITH new_order AS (INSERT INTO "{ORDERS.name}" ({", ".join(columns)}) VALUES ({values})), '  # noqa: S608
        f'numbered AS (UPDATE "{_USERS.name}" SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq) '
        f'INSERT INTO "{_EVENTS.name}" (user_id, seq, type, payload, ts) '
        "VALUES (%s, (SELECT last_seq FROM numbered), %s, %s, %s) RETURNING seq"
    )
