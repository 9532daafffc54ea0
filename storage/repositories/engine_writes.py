"""The execution engine's write tokens (table `engine_writes`, storage/models.py EngineWrite).

On PostgreSQL a write whose connection is lost before the commit's answer arrives may or may not have committed.
Written again blindly, a committed batch would store its events a second time under new numbers, and a batch with
fills would fail on their keys and be replayed from memory rebuilt after it, filling its orders again. So each
engine write stores a token in its own transaction, and a retry first asks whether its token is there. Tokens
older than the caller's floor (an id) are pruned by the same writes, through the primary key.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlmodel import Session, col

from storage.models import EngineWrite

TABLE = EngineWrite.__tablename__
# The statement path's parts (storage/repositories/engine_statement.py): parameters token, then floor.
STATEMENT_PARTS = (
    f'token_in AS (INSERT INTO "{TABLE}" (id) VALUES (%s))',  # noqa: S608 (the table's name from the model)
    f'tokens_pruned AS (DELETE FROM "{TABLE}" WHERE id < %s)',  # noqa: S608
)


def store(session: Session, token: str, floor: str) -> None:
    """Store `token` in the session's transaction and prune the tokens below `floor`."""
    session.execute(insert(EngineWrite).values(id=token))
    session.execute(delete(EngineWrite).where(col(EngineWrite.id) < floor))


def committed(session: Session, token: str) -> bool:
    """Whether the write that stored `token` committed."""
    return session.execute(select(col(EngineWrite.id)).where(col(EngineWrite.id) == token)).first() is not None
