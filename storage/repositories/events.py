"""The append-only account-event log with a per-user, gap-free sequence."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlmodel import Session, col

from storage.models import Event, User

_PENDING = "tradewind_pending_events"

SeqSink = Callable[[int], None]


def append(session: Session, user_id: str, type_: str, payload: str, ts: int, on_seq: SeqSink | None = None) -> Event:
    """Queue an event in the caller's transaction; it gets the user's next seq when the transaction commits.

    Numbers are taken in one `UPDATE users SET last_seq = last_seq + n ... RETURNING` per user just before commit,
    users in id order. So the only lock on a user row is taken last, for the shortest time, in a global order:
    transactions touching the same user queue on it without deadlocking (on PostgreSQL the UPDATE's row lock does
    not conflict with the key-share locks that foreign-key checks take). A rolled-back transaction takes no numbers,
    so the sequence stays gap-free. `on_seq` learns the number once it is known.
    """
    row = Event(user_id=user_id, seq=0, type=type_, payload=payload, ts=ts)
    session.info.setdefault(_PENDING, []).append((row, on_seq))
    return row


@sa_event.listens_for(Session, "before_commit")
def _number_pending_events(session: Session) -> None:
    pending: list[tuple[Event, SeqSink | None]] = session.info.pop(_PENDING, [])
    by_user: dict[str, list[tuple[Event, SeqSink | None]]] = defaultdict(list)
    for item in pending:
        by_user[item[0].user_id].append(item)
    for user_id in sorted(by_user):
        rows = by_user[user_id]
        bump = (
            update(User)
            .where(col(User.id) == user_id)
            .values(last_seq=col(User.last_seq) + len(rows))
            .returning(col(User.last_seq))
        )
        last = session.execute(bump).scalar_one()
        for seq, (row, on_seq) in enumerate(rows, start=last - len(rows) + 1):
            row.seq = seq
            session.add(row)
            if on_seq is not None:
                on_seq(seq)


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending_events(session: Session) -> None:
    session.info.pop(_PENDING, None)


def since(session: Session, user_id: str, since_seq: int, limit: int = 10_000) -> list[Event]:
    query = (
        select(Event)
        .where(col(Event.user_id) == user_id, col(Event.seq) > since_seq)
        .order_by(col(Event.seq))
        .limit(limit)
    )
    return list(session.scalars(query))


def latest_seq(session: Session, user_id: str) -> int:
    user = session.get(User, user_id)
    return user.last_seq if user else 0
