"""Driver-level statements for the hottest writes (orders, fills, events, balances, positions, event numbers).

SQLAlchemy Core's executemany costs ~13 µs per row here (it processes every parameter of every row in Python);
the same INSERT given to the driver costs ~5 µs, most of it SQLite's own work. Statements go to the driver's own
cursor, not through `Connection.exec_driver_sql`, whose result set-up alone was ~14 % of the app's CPU on
PostgreSQL under load; driver errors still arrive as SQLAlchemy's exceptions. Parameters are bound by position, not
by name: for a 35-column order row, sqlite3's named binding (a name lookup per parameter) cost ~9 µs of the
row's ~25 (measured: 25.3 → 16.0 µs per row, same table, same rows). The SQL text is rendered once per table,
column list and dialect from the table's metadata, so it stays in step with the models; what Core's type
processing would do is done here, once: Decimal money columns go to SQLite as canonical strings (ExactDecimal's
rule), to PostgreSQL as Decimal; anything else in a money column is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from storage.types import ExactDecimal

Values = tuple[Any, ...]


@cache
def _money_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, ExactDecimal))


def _placeholder(paramstyle: str) -> str:
    return "?" if paramstyle == "qmark" else "%s"


@cache
def _insert_sql(table: Table, columns: tuple[str, ...], paramstyle: str) -> str:
    values = ", ".join(_placeholder(paramstyle) for _ in columns)
    return f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({values})'  # noqa: S608 - names from metadata


@cache
def _update_sql(table: Table, key: str, columns: tuple[str, ...], paramstyle: str) -> str:
    mark = _placeholder(paramstyle)
    assignments = ", ".join(f"{c} = {mark}" for c in columns)
    return f'UPDATE "{table.name}" SET {assignments} WHERE {key} = {mark}'  # noqa: S608 - names from metadata


@cache
def _to_values(table: Table, names: tuple[str, ...], sqlite: bool) -> Callable[[dict[str, Any]], Values]:
    """A function from a row dict to its parameters in `names` order. Money must be Decimal (a float is refused on
    both databases); SQLite gets it as canonical text."""
    get = itemgetter(*names)
    pick: Callable[[dict[str, Any]], Values] = get if len(names) > 1 else (lambda row: (get(row),))
    money = [i for i, name in enumerate(names) if name in _money_columns(table)]
    if not money:
        return pick

    def values(row: dict[str, Any]) -> Values:
        picked = list(pick(row))
        for i in money:
            value = picked[i]
            if value is not None:
                if not isinstance(value, Decimal):
                    raise TypeError(f"{table.name}.{names[i]} takes Decimal, not {type(value).__name__}")
                if sqlite:
                    picked[i] = format(value, "f")
        return tuple(picked)

    return values


def _without_null_columns(table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """SQLite: `columns` less those that are None in every row and left out would be NULL anyway (nullable, no
    server default). Python's sqlite3 binds a None at several times the cost of a str or an int, and an order row
    carries about fifteen (a market order has no price, no stop, no parent …); an INSERT that names fewer columns
    binds fewer parameters. Rows that differ in which of those are None keep every column."""
    first = rows[0]
    nulls = tuple(c for c in columns if first[c] is None and c in _null_by_default(table))
    if not nulls:
        return columns
    if len(rows) > 1:
        get = itemgetter(*nulls)
        alike = get(first)
        if any(get(row) != alike for row in rows):
            return columns
    return _columns_less(columns, nulls)


@cache
def _null_by_default(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if c.nullable and c.server_default is None)


@cache
def _columns_less(columns: tuple[str, ...], left_out: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in columns if c not in left_out)


def row_values(table: Table, columns: tuple[str, ...], row: dict[str, Any]) -> Values:
    """One PostgreSQL row's parameters in `columns` order, money checked as every bulk write checks it."""
    return _to_values(table, columns, False)(row)


def check_money(table: Table, row: dict[str, Any]) -> None:
    """Refuse a row whose money is not Decimal (a float would not be exact), as every bulk write does."""
    for name in _money_columns(table) & row.keys():
        value = row[name]
        if value is not None and not isinstance(value, Decimal):
            raise TypeError(f"{table.name}.{name} takes Decimal, not {type(value).__name__}")


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT every row (all rows carry the same keys; the dicts are not changed)."""
    if not rows:
        return
    columns = tuple(rows[0])
    paramstyle = _paramstyle(connection)
    if paramstyle == "qmark":
        columns = _without_null_columns(table, columns, rows)
    values = _to_values(table, columns, paramstyle == "qmark")
    params = [values(row) for row in rows]
    if paramstyle == "qmark":
        _execute_many(connection, _insert_sql(table, columns, paramstyle), params)
        return
    if len(params) == 1:  # PostgreSQL, one row: one round trip (a COPY takes two: start, then data and end)
        sql = _insert_sql(table, columns, paramstyle)
        with driver_cursor(connection, sql, params) as cursor:
            cursor.execute(sql, params[0])
        return
    # PostgreSQL: COPY, not executemany. psycopg's executemany sends and reads back each row as its own query, in
    # Python: 23-27 µs of CPU per row here, against 6-8 µs per row by COPY at 32-64 rows.
    sql = _copy_sql(table, columns)
    with driver_cursor(connection, sql, params) as cursor, cursor.copy(sql) as copy:
        for row in params:
            copy.write_row(row)


@cache
def _copy_sql(table: Table, columns: tuple[str, ...]) -> str:
    return f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN'


def update_rows(
    connection: Connection, table: Table, key: str, columns: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """UPDATE `columns` of each row found by `key`; rows carry `_key` and every column. Rows with the same `_key`
    leave the last one's values, as one update after the other would: only that one is sent."""
    if not rows:
        return
    columns = tuple(columns)
    paramstyle = _paramstyle(connection)
    values = _to_values(table, (*columns, "_key"), paramstyle == "qmark")
    params = [values(row) for row in {row["_key"]: row for row in rows}.values()]
    if paramstyle == "qmark":
        _execute_many(connection, _update_sql(table, key, columns, paramstyle), params)
    else:
        # Planned at every run, never prepared: a generic plan made while the table was young (psycopg prepares on
        # the fifth run) joins by a scan of every row, and PostgreSQL keeps it until the table is analysed again
        # (docs/orders.md, "Speed"). Upserts need no join: their conflict check is always the key's index.
        _execute_arrays(connection, _update_unnest_sql(table, key, columns), params, prepare=False)


def upsert_rows(connection: Connection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """INSERT every row, or UPDATE the row's other columns where a row with the same `keys` exists (ON CONFLICT …
    DO UPDATE, the same text on SQLite and PostgreSQL). Through Core this cost ~50 µs per statement here.
    Rows sharing `keys` leave the last one's values, as one upsert after the other would: only that one is sent."""
    if not rows:
        return
    columns = tuple(rows[0])
    paramstyle = _paramstyle(connection)
    values = _to_values(table, columns, paramstyle == "qmark")
    key_of = itemgetter(*keys)
    params = [values(row) for row in {key_of(row): row for row in rows}.values()]
    if paramstyle == "qmark":
        _execute_many(connection, _upsert_sql(table, keys, columns, paramstyle), params)
    else:
        _execute_arrays(connection, _upsert_unnest_sql(table, keys, columns), params)


@cache
def _upsert_sql(table: Table, keys: tuple[str, ...], columns: tuple[str, ...], paramstyle: str) -> str:
    return f"{_insert_sql(table, columns, paramstyle)} {on_conflict(keys, columns)}"


def on_conflict(keys: tuple[str, ...], columns: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {assignments}"


# PostgreSQL: updates and upserts as ONE statement over arrays, one array per column (`unnest(%s::type[], …)`):
# psycopg's executemany sends and reads back each row as its own query, in Python (~25 µs of CPU per row here).
# The text depends only on the table and columns, so psycopg prepares an upsert once it has been used a few times
# (an update by key is planned at every run: `update_rows`).


@cache
def _unnest(table: Table, columns: tuple[str, ...], key: str | None = None) -> str:
    """`unnest(%s::type[], …)` for `columns` (`_key` has the type of `key`)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = [table.c[key if c == "_key" and key else c].type.compile(dialect=dialect) for c in columns]
    return f"unnest({', '.join(f'%s::{type_}[]' for type_ in types)})"


@cache
def _update_unnest_sql(table: Table, key: str, columns: tuple[str, ...]) -> str:
    names = (*columns, "_key")
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    source = f"{_unnest(table, names, key)} AS v({', '.join(names)})"
    return f'UPDATE "{table.name}" AS t SET {assignments} FROM {source} WHERE t.{key} = v._key'  # noqa: S608


@cache
def _upsert_unnest_sql(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> str:
    select = f"SELECT * FROM {_unnest(table, columns)}"  # noqa: S608 - names and types from metadata
    return f'INSERT INTO "{table.name}" ({", ".join(columns)}) {select} {on_conflict(keys, columns)}'


def _execute_arrays(connection: Connection, sql: str, params: list[Values], prepare: bool | None = None) -> None:
    arrays = [list(column) for column in zip(*params, strict=True)]
    with driver_cursor(connection, sql, params) as cursor:
        cursor.execute(sql, arrays, prepare=prepare)


def add_returning(connection: Connection, table: Table, key: str, key_value: str, column: str, amount: int) -> int:
    """`column += amount` on the row whose `key` is `key_value`; the new value (the row must exist)."""
    return add_returning_many(connection, table, key, column, [(key_value, amount)])[0]


def add_returning_many(
    connection: Connection, table: Table, key: str, column: str, amounts: Sequence[tuple[str, int]]
) -> list[int]:
    """`column += amount` for each `(key_value, amount)`, one row after the other in the order given (so row locks
    are taken in that order); the new values, in the same order. On PostgreSQL two rows or more go in one pipeline
    (one round trip: one statement per row, each its own round trip, was a quarter of the app's CPU under load
    there); a single row is one plain statement, since the pipeline's closing sync would be a second round trip."""
    if not amounts:
        return []
    paramstyle = _paramstyle(connection)
    sql = _add_sql(table, key, column, paramstyle)
    params: list[Values] = [(amount, key_value) for key_value, amount in amounts]
    with driver_cursor(connection, sql, params) as cursor:
        # sqlite3's executemany returns no rows, and a local call is cheap. On PostgreSQL one row is one round trip
        # alone; the pipeline below adds a second (its closing sync) and pays off from two rows.
        if paramstyle == "qmark" or len(params) == 1:
            values = []
            for one in params:
                cursor.execute(sql, one)
                values.append(cursor.fetchone()[0])
            return values
        cursor.executemany(sql, params, returning=True)
        values = [cursor.fetchone()[0]]
        while cursor.nextset():
            values.append(cursor.fetchone()[0])
        return values


@cache
def _add_sql(table: Table, key: str, column: str, paramstyle: str) -> str:
    mark = _placeholder(paramstyle)
    return f'UPDATE "{table.name}" SET {column} = {column} + {mark} WHERE {key} = {mark} RETURNING {column}'  # noqa: S608


def _paramstyle(connection: Connection) -> str:
    return str(connection.dialect.paramstyle)


def _execute_many(connection: Connection, sql: str, params: list[Values]) -> None:
    with driver_cursor(connection, sql, params) as cursor:
        cursor.executemany(sql, params)


@contextmanager
def driver_cursor(connection: Connection, sql: str, params: list[Values]) -> Iterator[Any]:
    """A cursor of the driver's own (psycopg's executemany takes `returning`), closed after use. A driver error is
    raised as SQLAlchemy's wrapper of it and a lost connection is invalidated, as `Connection.exec_driver_sql` would
    do, so `storage.db.is_transient` and IntegrityError handlers still apply."""
    dialect = connection.dialect
    driver_error = dialect.loaded_dbapi.Error
    cursor: Any = connection.connection.cursor()
    try:
        yield cursor
    except driver_error as error:
        lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, params, error, driver_error, connection_invalidated=lost, dialect=dialect, ismulti=True
        ) from error
    finally:
        cursor.close()
