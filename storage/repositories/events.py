"""The append-only account-event log with a per-user, gap-free sequence."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import Event, User


def append(session: Session, user_id: str, type_: str, payload: str, ts: int) -> Event:
    """Take the user's next seq and store the event, in the caller's transaction.

    The UPDATE ... RETURNING row-locks the user on PostgreSQL, so concurrent writers get consecutive numbers
    and the sequence stays gap-free (a rolled-back transaction gives its number back).
    """
    seq = session.execute(
        update(User).where(col(User.id) == user_id).values(last_seq=User.last_seq + 1).returning(col(User.last_seq))
    ).scalar_one()
    event = Event(user_id=user_id, seq=seq, type=type_, payload=payload, ts=ts)
    session.add(event)
    return event


def since(session: Session, user_id: str, since_seq: int, limit: int = 10_000) -> list[Event]:
    query = select(Event).where(Event.user_id == user_id, Event.seq > since_seq).order_by(col(Event.seq)).limit(limit)
    return list(session.exec(query))


def latest_seq(session: Session, user_id: str) -> int:
    user = session.get(User, user_id)
    return user.last_seq if user else 0
