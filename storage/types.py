"""Column types that keep money exact on every database."""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

# NUMERIC(38, 18) holds 38 significant digits; Decimal's default context (28) would round them on normalize().
WIDE = Context(prec=60)


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC(38, 18) on PostgreSQL; a canonical decimal string on SQLite (whose NUMERIC is a float).

    Reads come back as `Decimal` with trailing zeros removed, so both databases return the same value.
    """

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal columns take Decimal, not {type(value).__name__}")
        if dialect.name == "postgresql":
            return value
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        number = Decimal(value)
        return number.normalize(WIDE) if number != 0 else Decimal(0)
