"""Alembic: the migrations reach head and agree with the models (`alembic check`)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from storage.db import create_db_engine
from storage.migrate import alembic_config, upgrade_to_head


def test_head_matches_models(database_url: str) -> None:
    engine = create_db_engine(database_url)
    upgrade_to_head(engine)  # idempotent on an up-to-date schema
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"users", "accounts", "balances", "orders", "fills", "positions", "events"} <= tables
    command.check(alembic_config(database_url))  # raises if models and migrations disagree


def test_sqlite_runs_in_wal_mode(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        else:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
