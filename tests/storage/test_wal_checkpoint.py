"""The WAL checkpointer copies committed pages into the database file from its own thread; only for SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine

from storage.wal_checkpoint import WalCheckpointer
from tests.factories import wait_for


def write_without_checkpoints(path: Path, rows: int) -> sqlite3.Connection:
    """A WAL database with `rows` committed rows, none of them checkpointed yet (autocheckpoint off)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    for n in range(rows):
        connection.execute("INSERT INTO t (v) VALUES (?)", ("x" * 500 + str(n),))
        connection.commit()
    return connection


async def test_committed_pages_reach_the_database_file_without_the_writer_checkpointing(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    writer = write_without_checkpoints(path, 200)
    before = path.stat().st_size
    checkpointer = WalCheckpointer(str(path), every=0.01)
    checkpointer.start()
    try:
        await wait_for(lambda: path.stat().st_size > before, what="the checkpoint to copy the log")
        writer.execute("INSERT INTO t (v) VALUES ('after')")  # the writer keeps writing meanwhile
        writer.commit()
    finally:
        checkpointer.stop()
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (201,)
    writer.close()


def test_only_file_backed_sqlite_gets_one(tmp_path: Path) -> None:
    assert WalCheckpointer.for_engine(create_engine(f"sqlite:///{tmp_path / 'a.db'}")) is not None
    assert WalCheckpointer.for_engine(create_engine("sqlite://")) is None
    assert WalCheckpointer.for_engine(create_engine("postgresql+psycopg://postgres@127.0.0.1/x")) is None


def test_stop_ends_the_thread_and_start_again_works(tmp_path: Path) -> None:
    write_without_checkpoints(tmp_path / "b.db", 1).close()
    checkpointer = WalCheckpointer(str(tmp_path / "b.db"), every=0.01)
    for _ in range(2):
        checkpointer.start()
        thread = checkpointer._thread
        checkpointer.stop()
        assert thread is not None and not thread.is_alive()
