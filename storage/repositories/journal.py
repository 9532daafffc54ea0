"""A lone order's journal entry on PostgreSQL as one statement: the order row, its user's next event number and
its first event, committed together in one round trip.

Through the group commit's session the same entry is a transaction of five round trips (`BEGIN`, the order's
`INSERT`, the numbering `UPDATE … RETURNING`, the event's `INSERT`, `COMMIT`) on a writer thread: ~1.05 ms of a lone
order's ~1.3 ms acknowledgement in process (docs/orders.md, "Speed"). A statement in autocommit is its own
transaction, so all three rows are stored or none is; the event takes its seq from the numbering `UPDATE` in the same
statement, and a user row that is not there leaves the seq NULL, which fails the statement (nothing stored). Groups of
two orders or more are one statement too (`orders_with_events`): the orders' rows and the events as two JSON
parameters, the rows inserted through `json_populate_recordset` and the events numbered and inserted by
`tw_number_events` (migration d4e5f6a7b8c9), which locks the users' rows in id order first. Through the session the
same group took six round trips on a writer thread (`BEGIN`, two `COPY`s of two each, the numbering with `COMMIT`);
one JSON text per table is built by orjson in C, where psycopg adapted arrays value by value (docs/orders.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any

import orjson

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


async def orders_with_events(db: Database, entries: Sequence[tuple[dict[str, Any], str, str, str, int]]) -> list[int]:
    """Store each entry's order row and its user's next event ((row, user_id, type, payload, ts)) in one committed
    statement; the events' seqs, in the entries' order."""
    assert db.async_reads is not None, "PostgreSQL only (see `available`)"
    rows = [row for row, *_ in entries]
    for row in rows:
        bulk.check_money(ORDERS, row)
    columns = tuple(dict.fromkeys(chain.from_iterable(rows)))  # a key some row lacks: NULL there
    events = [(user_id, type_, payload, ts) for _, user_id, type_, payload, ts in entries]
    params = (rows_json(rows), events_json(events))
    return numbered_in_order(await db.async_reads.write_once(_group_sql(columns), params), events)


def numbered_in_order(bases: Sequence[tuple[Any, ...]], events: Sequence[tuple[str, str, str, int]]) -> list[int]:
    """The events' seqs, in their order, from `tw_number_events`' (user, base) rows: each user's k-th event in
    `events` got base + k."""
    base_of = {user_id: int(base) for user_id, base in bases}
    seqs, seen = [], dict.fromkeys(base_of, 0)
    for user_id, *_ in events:
        seen[user_id] += 1
        seqs.append(base_of[user_id] + seen[user_id])
    return seqs


def rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as one JSON array for `json_populate_recordset` (money as exact decimal strings)."""
    return orjson.dumps(rows, default=_decimal).decode()


def events_json(events: Sequence[tuple[str, str, str, int]]) -> str:
    """Events ((user_id, type, payload, ts)) as the JSON array `tw_number_events` reads."""
    return orjson.dumps(events).decode()


def _decimal(value: Any) -> str:
    if isinstance(value, Decimal):  # money: exact, as text (the numeric column reads it as typed)
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not stored as JSON here")


@cache
def _group_sql(columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    # Names from the models' metadata, values bound: nothing from a request is spliced into the text.
    return (
        f'WITH new_orders AS (INSERT INTO "{ORDERS.name}" ({names}) '  # noqa: S608
        f'SELECT {names} FROM json_populate_recordset(NULL::"{ORDERS.name}", %s::json)) '
        "SELECT numbered_user, base_seq FROM tw_number_events(%s::json)"
    )
