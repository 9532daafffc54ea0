"""storage/repositories/engine_writes.py through a session, on either database: a token is there once its
transaction committed, not after a rollback, and tokens below the floor are pruned."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.ids import id_floor, new_id
from storage.db import Database
from storage.repositories import engine_writes


async def test_a_token_is_there_once_its_transaction_committed(database_url: str) -> None:
    db = Database(database_url)
    try:
        old, kept, rolled_back = id_floor(1_000), new_id(), new_id()
        db.run_sync(lambda s: engine_writes.store(s, old, id_floor(0)))

        def store_and_fail(session: Session) -> None:
            engine_writes.store(session, rolled_back, id_floor(0))
            raise RuntimeError("the write fails after its token")

        with pytest.raises(RuntimeError):
            db.run_sync(store_and_fail)
        db.run_sync(lambda s: engine_writes.store(s, kept, id_floor(2_000)))
        assert await db.read(lambda s: engine_writes.committed(s, kept))
        assert not await db.read(lambda s: engine_writes.committed(s, rolled_back))
        assert not await db.read(lambda s: engine_writes.committed(s, old))  # below the floor: pruned
    finally:
        await db.aclose()
