"""Bots' API keys: always read and changed through their owner, except the hash lookup that authenticates a key."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.models import ApiKey, User


def add(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def by_hash(session: Session, key_hash: str) -> ApiKey | None:
    """The live (not revoked) key with this hash, whoever owns it: the one lookup that finds the owner."""
    query = select(ApiKey).where(col(ApiKey.key_hash) == key_hash, col(ApiKey.revoked_at).is_(None))
    return session.exec(query).first()


def list_live(session: Session, user_id: str) -> list[ApiKey]:
    """The user's keys that are not revoked, newest first."""
    query = select(ApiKey).where(col(ApiKey.user_id) == user_id, col(ApiKey.revoked_at).is_(None))
    return list(session.exec(query.order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())))


def count_live_locked(session: Session, user_id: str) -> int:
    """How many live keys the user holds, with the user's row locked until commit, so two concurrent creations
    cannot both pass the per-user limit (PostgreSQL; SQLite has one writer anyway)."""
    session.get(User, user_id, with_for_update=True)
    query = select(func.count()).select_from(ApiKey)
    return int(session.exec(query.where(col(ApiKey.user_id) == user_id, col(ApiKey.revoked_at).is_(None))).one())


def revoke(session: Session, user_id: str, key_id: str, at: int) -> ApiKey | None:
    """Mark the user's live key revoked; None if it is not theirs or already revoked."""
    key = session.exec(
        select(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.user_id) == user_id, col(ApiKey.revoked_at).is_(None))
        .with_for_update()
    ).first()
    if key is None:
        return None
    key.revoked_at = at
    session.add(key)
    return key


def touch(session: Session, key_id: str, at: int) -> None:
    """Record a use (never moves last_used_at backwards)."""
    session.execute(
        update(ApiKey)
        .where(col(ApiKey.id) == key_id)
        .where((col(ApiKey.last_used_at).is_(None)) | (col(ApiKey.last_used_at) < at))
        .values(last_used_at=at)
    )
