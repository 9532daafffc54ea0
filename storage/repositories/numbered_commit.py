"""PostgreSQL: a transaction's events numbered, stored and committed in one round trip, holding the users' rows for
no round trip at all.

Every intake group and every engine batch numbers its events on the rows of their users (`users.last_seq`,
storage/repositories/events.py). The plain way — the users' `UPDATE … RETURNING` (psycopg's pipeline for two users or
more), the events' `COPY`, `COMMIT` — holds those rows' locks across three or four round trips, and under load intake
and the engine number the same users, so each waits for the other's round trips (docs/orders.md, "Speed").

Here the events are first copied, unnumbered, into the connection's temporary staging table (`COPY`: no lock), then
one message sent by the simple-query protocol runs, back to back on the server, `tw_number_staged_events()` (a
PL/pgSQL function, migration c3d4e5f6a7b8: it locks the users' rows in id order with `FOR NO KEY UPDATE`, what an
`UPDATE` of `last_seq` takes, so foreign-key checks are not blocked and one global order means no deadlocks; numbers
and inserts the staged events; empties the stage) and `COMMIT`. The locks are held only while the server runs that
message. It is all one transaction: if the function fails, everything rolls back and the `COMMIT` does not run. An
event whose user has no row gets a NULL seq, which the table refuses, so nothing of the transaction is stored.

Only when the commit is the session's last act: no savepoint open, no ORM object waiting to be flushed (SQLAlchemy
flushes after `before_commit`). SQLAlchemy's own commit then finds the driver's transaction ended, and psycopg sends
nothing. Everything else takes the plain way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlmodel import Session

from storage import bulk

# Marks in the pool's record of a connection (cleared when the pool replaces the connection).
_STAGED = "tw_event_stage"  # the staging table exists (made by `create_stage`, the engine's `connect` listener)

# ON COMMIT PRESERVE ROWS: the numbering statement empties it (a rollback empties it too); truncating at every commit
# would cost a file operation per transaction.
_CREATE_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS tw_event_stage (ord integer NOT NULL, user_id varchar(26) NOT NULL, "
    "type varchar(32) NOT NULL, payload text NOT NULL, ts bigint NOT NULL) ON COMMIT PRESERVE ROWS"
)
_COPY = "COPY tw_event_stage (ord, user_id, type, payload, ts) FROM STDIN"
# One message, by the simple-query protocol (no parameters), which takes several statements at once. The function
# (migration c3d4e5f6a7b8) locks the users' rows in id order, numbers and inserts the staged events and empties the
# stage; PL/pgSQL keeps its plan for the session.
_NUMBER_STORE_COMMIT = "SELECT numbered_user, base_seq FROM tw_number_staged_events(); COMMIT"


def applies(session: Session, connection: Connection) -> bool:
    """Whether this commit may be ended here (see the module's docstring)."""
    return (
        connection.dialect.name == "postgresql"
        and bool(connection.connection.info.get(_STAGED))  # an engine of storage.db's making
        and not session.in_nested_transaction()
        and not (session.new or session.dirty or session.deleted)
    )


def create_stage(dbapi_connection: Any, record: Any) -> None:
    """A `connect` listener: the new connection's staging table (temporary tables live as long as the connection;
    created outside any transaction of the app's, so no rollback can take it away)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(_CREATE_STAGE)
    dbapi_connection.commit()
    record.info[_STAGED] = True


def number_store_commit(connection: Connection, events: Sequence[tuple[str, str, str, int]]) -> dict[str, int]:
    """Store `events` ((user_id, type, payload, ts), in order) with their users' next seqs and COMMIT the connection's
    transaction; each user's base (its k-th event here has seq base + k)."""
    with bulk.driver_cursor(connection, _NUMBER_STORE_COMMIT, []) as cursor:
        with cursor.copy(_COPY) as copy:
            for position, (user_id, type_, payload, ts) in enumerate(events):
                copy.write_row((position, user_id, type_, payload, ts))
        cursor.execute(_NUMBER_STORE_COMMIT, prepare=False)
        return {user_id: int(base) for user_id, base in cursor.fetchall()}
