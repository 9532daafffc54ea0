"""PostgreSQL's event-numbering functions (migrations d4e5f6a7b8c9, c3d4e5f6a7b8, e5f6a7b8c9d0): among thousands of
users they lock and number only the events' users, found through the primary key, never by reading the whole users
table (every intake group and engine batch calls one of them)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from storage.db import create_db_engine
from tests.storage.test_client_order_ids import user_account_rows

pytestmark = pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="the functions are PostgreSQL's")

USERS_SCANS = text("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'users'")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)  # its connections have the staging table (storage/db.py)
    yield engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE users")  # the statistics as they were: the crowd below was rolled back
    engine.dispose()


def with_a_crowd(connection: Connection, prefix: str) -> None:
    """5,000 more users in this transaction, and statistics that know them."""
    connection.execute(
        text(
            "INSERT INTO users (id, email, password_hash, created_at, token_version, last_seq) "
            "SELECT :prefix || lpad(g::text, 16, '0'), :prefix || g || '@example.com', 'x', 1, 0, 0 "
            "FROM generate_series(1, 5000) AS g"
        ),
        {"prefix": prefix},
    )
    connection.exec_driver_sql("ANALYZE users")


def numbered(connection: Connection, call: str, params: dict[str, str]) -> tuple[dict[str, int], int, int]:
    """The function's (user → base) and the users table's sequential and index scans during the call."""
    seq_before, idx_before = connection.execute(USERS_SCANS).one()
    bases = {user: int(base) for user, base in connection.execute(text(call), params)}
    seq_after, idx_after = connection.execute(USERS_SCANS).one()
    return bases, seq_after - seq_before, idx_after - idx_before


def test_tw_number_events_finds_its_users_by_key(engine: Engine) -> None:
    (alice, _), (bob, _) = user_account_rows(engine), user_account_rows(engine)
    events = f'[["{alice}", "X", "{{}}", 1], ["{bob}", "X", "{{}}", 1], ["{alice}", "Y", "{{}}", 2]]'
    with engine.connect() as connection:
        with_a_crowd(connection, alice[:10])
        bases, seq_scans, index_scans = numbered(
            connection, "SELECT * FROM tw_number_events(CAST(:events AS json))", {"events": events}
        )
        connection.rollback()
    assert bases == {alice: 0, bob: 0}
    assert seq_scans == 0 and index_scans >= 2  # the lock and the numbering, each through users_pkey


def test_tw_number_staged_events_finds_its_users_by_key(engine: Engine) -> None:
    (alice, _), (bob, _) = user_account_rows(engine), user_account_rows(engine)
    with engine.connect() as connection:
        with_a_crowd(connection, alice[:10])
        connection.execute(
            text(
                "INSERT INTO tw_event_stage (ord, user_id, type, payload, ts) "
                "VALUES (0, :alice, 'X', '{}', 1), (1, :bob, 'X', '{}', 1), (2, :alice, 'Y', '{}', 2)"
            ),
            {"alice": alice, "bob": bob},
        )
        bases, seq_scans, index_scans = numbered(connection, "SELECT * FROM tw_number_staged_events()", {})
        connection.rollback()
    assert bases == {alice: 0, bob: 0}
    assert seq_scans == 0 and index_scans >= 2
