"""PostgreSQL's pool pings a connection before use only when it sat idle: a dead idle connection is replaced
unseen, one used moments ago goes out unpinged (a lost one then fails as a transient error, which writers retry
and reads run again)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlmodel import Session

import storage.db
from storage.db import Database, is_transient

pytestmark = pytest.mark.skipif(
    os.environ.get("TW_TEST_DB") != "postgres", reason="a server session to end is PostgreSQL's"
)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def backend_pid(session: Session) -> int:
    return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def end_session(pid: int) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_a_connection_that_died_while_idle_is_replaced_before_use(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = db.run_sync(backend_pid)
    end_session(first)
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle

    second = db.run_sync(backend_pid)  # the ping found the dead one: no error reaches the caller

    assert second != first


def test_a_connection_used_moments_ago_is_not_pinged_and_its_loss_is_transient(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    first = db.run_sync(backend_pid)
    end_session(first)

    with pytest.raises(Exception) as lost:  # no ping: the work itself meets the dead connection
        db.run_sync(backend_pid)

    assert is_transient(lost.value)  # what intake and the engine retry on
    assert db.run_sync(backend_pid) != first  # and the pool has let it go


async def test_a_read_whose_connection_was_lost_runs_again_on_another(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    first = await db.read(backend_pid)
    end_session(first)

    second = await db.read(backend_pid)  # no error reaches the reader

    assert second != first
