"""SQLite WAL checkpoints on a thread of their own, so that they do not stall the event loop.

On SQLite the app writes on the event loop's thread (storage/db.py). SQLite's automatic checkpoint runs inside the
COMMIT that grows the write-ahead log past 1,000 pages: that commit copies the log into the database file and
syncs it, 5-11 ms here instead of ~0.1 ms, and every request waiting on the loop waits with it (measured at 200
orders/s: ~1 % of commits, the bulk of the acknowledgements' p99; docs/orders.md, "Speed").

A PASSIVE checkpoint from another connection every `every` seconds keeps the log short, so the automatic one has
nothing left to do; it never blocks the writer (SQLite lets writers append while a checkpoint copies), and the
sqlite3 module releases the GIL while SQLite works. Durability is unchanged: a commit is in the log either way.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Engine

log = logging.getLogger(__name__)

EVERY_SECONDS = 0.05


class WalCheckpointer:
    def __init__(self, database: str, every: float = EVERY_SECONDS) -> None:
        self.database = database
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_engine(cls, engine: Engine, every: float = EVERY_SECONDS) -> WalCheckpointer | None:
        """A checkpointer for a file-backed SQLite engine; None for any other database."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return cls(url.database, every)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self.database, check_same_thread=False)
        try:
            while not self._stop.wait(self.every):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # busy or locked: the next round tries again
                    log.debug("WAL checkpoint skipped: %s", error)
        finally:
            connection.close()
