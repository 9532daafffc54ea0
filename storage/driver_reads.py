"""Driver-level reads for the hottest reads: balances, positions, the account listing, a user's orders, one order
with its fills, and intake's client-order-id lookup.

Bots and open pages poll these all the time. Through an ORM `Session` one such read cost ~190-220 µs of CPU here:
~80 µs for the session itself (construction, begin, pool checkout, commit, close) before any row, and as much again
for building the ORM query and loading entities; the same SELECT handed to the driver on a pooled connection costs
~12 µs. So each read is written once as a Core `select` (it stays in step with the models and each dialect renders
its own SQL), rendered once per dialect, and then run on the driver's own cursor: parameters bound as the driver
wants them, every column's own result processing applied to the rows as Core would (on SQLite `ExactDecimal` text
becomes `Decimal`), rows returned as named tuples (attribute access, like the ORM object they replace).

Parameters are `bindparam`s named in the statement; callers pass plain values (ids, text, numbers), which go to the
driver as they are. Driver errors arrive as SQLAlchemy's exceptions, a lost connection invalidated, as through
`Connection.execute`, so `storage.db.is_transient` and the reader's read-again-if-lost apply.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Dialect, Select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import PoolProxiedConnection

Processor = Callable[[Any], Any] | None
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Rendered:
    sql: str
    positional: tuple[str, ...] | None  # bind names in order (qmark drivers); None: by name (psycopg)
    defaults: Mapping[str, Any]  # values bound in the statement itself (constants, OFFSET)
    required: frozenset[str]  # parameters the caller must give (a missing one would silently bind NULL)


ReadPlan = Generator[tuple["DriverRead", dict[str, Any]], list[Any], T]
"""Several driver-level reads as one piece of logic with no I/O of its own: it yields `(read, params)`, is sent
that read's rows, and returns the answer. The same plan runs on a `DriverReader` (inline on SQLite, on the reader
threads) or awaited on the event loop (storage/read_pool.py), on one connection either way."""


def single(read: DriverRead, params: dict[str, Any]) -> ReadPlan[list[Any]]:
    """The plan of one read: its rows."""
    return (yield read, params)


class DriverReader:
    """Driver-level reads on one pooled connection (`Database.fetch_in`): several statements, one checkout."""

    def __init__(self, connection: PoolProxiedConnection, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def rows(self, read: DriverRead, **params: Any) -> list[Any]:
        return read.rows(self.connection, self.dialect, params)

    def run(self, plan: ReadPlan[T]) -> T:
        """Drive `plan` to its answer on this connection."""
        try:
            read, params = next(plan)
            while True:
                read, params = plan.send(read.rows(self.connection, self.dialect, params))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class DriverRead:
    """One read-only SELECT, rendered per dialect on first use and run at the driver (`Database.fetch`)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.row: Any = namedtuple("Row", [column.key for column in statement.selected_columns])  # type: ignore[misc]
        self._rendered: dict[str, _Rendered] = {}
        # Per dialect, once the first answer told each column's type as the driver sees it (as Core asks).
        self._processors: dict[str, tuple[Processor, ...]] = {}

    def rows(self, connection: PoolProxiedConnection, dialect: Dialect, params: Mapping[str, Any]) -> list[Any]:
        rendered, bound = self._bind(dialect, params)
        cursor = connection.cursor()
        try:
            cursor.execute(rendered.sql, bound)
            fetched = cursor.fetchall()
            processors = self._processors.get(dialect.name) or self._processors_for(dialect, cursor.description)
        except dialect.loaded_dbapi.Error as error:
            lost = dialect.is_disconnect(error, connection.dbapi_connection, cursor)
            if lost:
                connection.invalidate(error)
            raise driver_error(rendered.sql, bound, error, dialect, lost) from error
        finally:
            cursor.close()
        return self._make_rows(fetched, processors)

    async def rows_async(self, connection: Any, dialect: Dialect, params: Mapping[str, Any]) -> list[Any]:
        """The same read on a psycopg `AsyncConnection` (storage/read_pool.py), awaited on the event loop. A lost
        connection shows as `connection_invalidated` on the error; the pool drops it when it comes back broken."""
        rendered, bound = self._bind(dialect, params)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(rendered.sql, bound)
                fetched = await cursor.fetchall()
                processors = self._processors.get(dialect.name) or self._processors_for(dialect, cursor.description)
        except dialect.loaded_dbapi.Error as error:
            raise driver_error(rendered.sql, bound, error, dialect, bool(connection.broken)) from error
        return self._make_rows(fetched, processors)

    def _bind(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[_Rendered, Any]:
        rendered = self._rendered.get(dialect.name) or self._render(dialect)
        if not rendered.required <= params.keys():
            raise TypeError(f"missing parameters: {', '.join(sorted(rendered.required - params.keys()))}")
        values = {**rendered.defaults, **params}
        return rendered, values if rendered.positional is None else tuple(values[name] for name in rendered.positional)

    def _make_rows(self, fetched: Sequence[Sequence[Any]], processors: tuple[Processor, ...]) -> list[Any]:
        make = self.row._make
        if not any(processors):
            return [make(row) for row in fetched]
        return [
            make([value if p is None or value is None else p(value) for p, value in zip(processors, row, strict=True)])
            for row in fetched
        ]

    def _render(self, dialect: Dialect) -> _Rendered:
        compiled = self.statement.compile(dialect=dialect)
        if "__[POSTCOMPILE_" in str(compiled):  # rendered anew per execution by Core; bind each value instead
            raise ValueError("a driver-level read takes no expanding parameters (IN over one bound list)")
        positional = tuple(compiled.positiontup or ()) if compiled.positional else None
        required = frozenset(name for name, bind in compiled.binds.items() if bind.required)
        rendered = _Rendered(str(compiled), positional, dict(compiled.params), required)
        self._rendered[dialect.name] = rendered
        return rendered

    def _processors_for(self, dialect: Dialect, description: Sequence[Sequence[Any]]) -> tuple[Processor, ...]:
        processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(self.statement.selected_columns, description, strict=True)
        )
        self._processors[dialect.name] = processors
        return processors


def driver_error(sql: str, bound: Any, error: Exception, dialect: Dialect, lost: bool) -> StatementError:
    """The driver's error as SQLAlchemy's, as `Connection.execute` raises it (so `is_transient` applies)."""
    dbapi_error = dialect.loaded_dbapi.Error
    return DBAPIError.instance(sql, bound, error, dbapi_error, connection_invalidated=lost, dialect=dialect)
