"""PostgreSQL: an engine batch's outputs as one statement awaited on the event loop.

Through the session a batch's writes are a transaction of several round trips on a writer thread (`BEGIN`, the
orders' updates, the fills' `COPY`, the positions' and balances' upserts, the events' staging `COPY`, the numbering
with `COMMIT`). Under load that thread held the GIL ~11 % of the time, much of it inside psycopg calls that do not let
go of it (the `COPY`'s data and end, array dumping), and the event loop waited for it (docs/orders.md, "Speed"). Here
each table's rows are one JSON text built by orjson (money checked Decimal, sent as exact decimal strings), and one
statement in autocommit updates the orders, inserts the fills, upserts the positions and balances (the same
`ON CONFLICT … DO UPDATE` as the session's way) and numbers and inserts the events with `tw_number_events`
(migration d4e5f6a7b8c9, which locks the users' rows in id order first): all of it or none of it is stored.

Only the common outputs: a batch that inserts orders or deletes balances (bracket exits, a paper reset) takes the
session's way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from storage import bulk
from storage.repositories import engine_writes
from storage.repositories.journal import events_json, numbered_in_order, rows_json
from storage.repositories.writes import BALANCES, FILLS, ORDERS, POSITIONS

if TYPE_CHECKING:
    from storage.db import Database

Event = tuple[str, str, str, int]  # user_id, type, payload, ts


async def write_outputs(
    db: Database,
    updated: list[dict[str, Any]],
    update_columns: Sequence[str],
    fills: list[dict[str, Any]],
    positions: list[dict[str, Any]],
    balances: list[dict[str, Any]],
    events: Sequence[Event],
    *,
    token: tuple[str, str] | None = None,
) -> list[int]:
    """Store a batch's outputs in one committed statement; the events' seqs, in `events`' order. `updated` rows
    carry `id` and `update_columns`; positions carry account_id, symbol, quantity, cost, realized_pnl; balances
    account_id, asset, free, locked. `token`: (the write's token, the floor below which old tokens are pruned),
    stored with the outputs (storage/repositories/engine_writes.py)."""
    assert db.async_reads is not None, "PostgreSQL only (see journal.available)"
    for table, rows in ((ORDERS, updated), (FILLS, fills), (POSITIONS, positions), (BALANCES, balances)):
        for row in rows:
            bulk.check_money(table, row)
    texts = (rows_json(updated), rows_json(fills), rows_json(positions), rows_json(balances))
    params = (*texts, *(token or ()), events_json(events))
    sql = _sql(tuple(update_columns), _columns(fills), _columns(positions), _columns(balances), token is not None)
    # Planned for every batch, never prepared: psycopg prepares a statement on its fifth run and PostgreSQL then
    # keeps one generic plan, made for the orders table of that moment, until the table's statistics change. Made
    # on a young table it scans every order; under the load bench that scan grew to ~1.7 ms a batch within a minute
    # and cost ~10 % of the throughput by the second round (docs/orders.md, "Speed"). Planning costs less.
    return numbered_in_order(await db.async_reads.write_once(sql, params, prepare=False), events)


def _columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(rows[0]) if rows else ()


@cache
def _sql(
    update_columns: tuple[str, ...],
    fill_columns: tuple[str, ...],
    position_columns: tuple[str, ...],
    balance_columns: tuple[str, ...],
    with_token: bool,
) -> str:
    """The statement for these column lists (an empty list: that part reads an empty array and writes nothing).
    Names from the models' metadata, values bound: nothing from a request is spliced into the text."""
    assignments = ", ".join(f"{c} = v.{c}" for c in update_columns)
    parts = [
        # The rows once, and the orders found by primary key: a set-returning function is estimated at 100 rows,
        # and against a few thousand orders the planner chose a hash join over a scan of every order, each batch.
        # With `id = ANY(ARRAY(…))` (estimated at 10) it looks the orders up in the primary key.
        f'given AS MATERIALIZED (SELECT * FROM json_populate_recordset(NULL::"{ORDERS.name}", %s::json))',  # noqa: S608
        f'updated AS (UPDATE "{ORDERS.name}" AS t SET {assignments} FROM given AS v '  # noqa: S608
        "WHERE t.id = v.id AND t.id = ANY(ARRAY(SELECT id FROM given)))",
        _insert(FILLS.name, fill_columns, "fills_in", ()),
        _insert(POSITIONS.name, position_columns, "positions_up", ("account_id", "symbol")),
        _insert(BALANCES.name, balance_columns, "balances_up", ("account_id", "asset")),
        *(engine_writes.STATEMENT_PARTS if with_token else ()),
    ]
    return f"WITH {', '.join(parts)} SELECT numbered_user, base_seq FROM tw_number_events(%s::json)"  # noqa: S608


def _insert(table: str, columns: tuple[str, ...], name: str, keys: tuple[str, ...]) -> str:
    if not columns:  # nothing of this table in the batch: the parameter is an empty array
        return f"{name} AS (SELECT count(*) FROM json_array_elements(%s::json))"  # noqa: S608
    names = ", ".join(columns)
    upsert = f" {bulk.on_conflict(keys, columns)}" if keys else ""
    return (
        f'{name} AS (INSERT INTO "{table}" ({names}) '  # noqa: S608
        f'SELECT {names} FROM json_populate_recordset(NULL::"{table}", %s::json){upsert})'
    )
