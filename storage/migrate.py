"""Apply Alembic migrations programmatically (start-up and tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision, on the engine's own connection."""
    config = alembic_config()
    with engine.connect() as connection, foreign_keys_checked_at_the_end(connection):
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def foreign_keys_checked_at_the_end(connection: Connection) -> Iterator[None]:
    """Run the migrations in one transaction; on SQLite with foreign keys enforced at the end instead of per
    statement. SQLite changes a table by copying it (Alembic's batch mode), and dropping the old copy of a table that
    other rows point at fails while foreign keys are on, even though the new copy takes its name a moment later.
    This is SQLite's own recipe for such changes (https://www.sqlite.org/lang_altertable.html, "Making Other Kinds
    Of Table Schema Changes"): foreign keys off outside the transaction, `PRAGMA foreign_key_check` before the
    commit, back on after. The pragma is a no-op inside a transaction, hence the commit before `begin`."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            yield
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows pointing at missing rows: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
