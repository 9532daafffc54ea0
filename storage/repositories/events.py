"""The append-only account-event log with a per-user, gap-free sequence."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlmodel import Session, col

from storage import bulk
from storage.models import Event, User
from storage.repositories import numbered_commit, writes

PENDING_KEY = "tradewind_pending_events"  # session.info: the events waiting for their seq

SeqSink = Callable[[int], None]


@dataclass(slots=True)
class _Pending:
    """An event waiting for its seq: plain data, not an ORM object (building a SQLModel row cost more than all of
    the event's other work in the execution engine)."""

    user_id: str
    type: str
    payload: str
    ts: int
    on_seq: SeqSink | None


def append(session: Session, user_id: str, type_: str, payload: str, ts: int, on_seq: SeqSink | None = None) -> None:
    """Queue an event in the caller's transaction; it gets the user's next seq when the transaction commits.

    Numbers are taken in one `UPDATE users SET last_seq = last_seq + n ... RETURNING` per user just before commit,
    users in id order (on PostgreSQL, numbering, storing and the commit itself go in one message when the commit is
    the session's last act: storage/repositories/numbered_commit.py). So the only lock on a user row is taken
    last, for the shortest time, in a global order: transactions touching the same user queue on it without
    deadlocking (on PostgreSQL the UPDATE's row lock does not conflict with the key-share locks that foreign-key
    checks take). A rolled-back transaction takes no numbers, so the sequence stays gap-free. `on_seq` learns the
    number once it is known.
    """
    session.info.setdefault(PENDING_KEY, []).append(_Pending(user_id, type_, payload, ts, on_seq))


_USERS = User.__table__  # type: ignore[attr-defined]


@sa_event.listens_for(Session, "before_commit")
def _number_pending_events(session: Session) -> None:
    pending: list[_Pending] = session.info.pop(PENDING_KEY, [])
    if not pending:
        return
    connection = session.connection()
    if numbered_commit.applies(session, connection):  # PostgreSQL: numbered, stored and committed in one message
        writes.flush_staged_orders(session)  # the transaction ends in there: what is staged goes first
        staged = [(item.user_id, item.type, item.payload, item.ts) for item in pending]
        seq_of = numbered_commit.number_store_commit(connection, staged)
        for item in pending:
            seq_of[item.user_id] += 1
            if item.on_seq is not None:
                item.on_seq(seq_of[item.user_id])
        return
    by_user: dict[str, list[_Pending]] = defaultdict(list)
    for item in pending:
        by_user[item.user_id].append(item)
    rows: list[dict[str, object]] = []
    users = sorted(by_user)
    # At the driver, all users' numbers in one call (one round trip on PostgreSQL): through Session.execute this
    # UPDATE took the ORM's bulk path (~10x the cost), through Core it still cost ~50 µs per user.
    lasts = bulk.add_returning_many(connection, _USERS, "id", "last_seq", [(u, len(by_user[u])) for u in users])
    for user_id, last in zip(users, lasts, strict=True):
        items = by_user[user_id]
        for seq, item in enumerate(items, start=last - len(items) + 1):
            rows.append({"user_id": user_id, "seq": seq, "type": item.type, "payload": item.payload, "ts": item.ts})
            if item.on_seq is not None:
                item.on_seq(seq)
    if rows:  # one executemany for the whole transaction (on the connection: no ORM bulk-insert path)
        bulk.insert_rows(session.connection(), Event.__table__, rows)  # type: ignore[attr-defined]


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending_events(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


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
