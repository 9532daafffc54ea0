"""Intake's journal entry: a new order's row and its first event, stored together through the group commit
(storage/group_commit.py) before the order is acknowledged.

Three forms of the same writes: the session's (any database; SQLite's only), and on PostgreSQL one statement awaited
on the event loop for a lone order (`journal.order_with_event`) and one for a whole group of orders
(`journal.orders_with_events`), instead of a transaction of several round trips on a writer thread."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.events import UserEvent
from storage.db import Database
from storage.repositories import events, journal, writes

Entry = tuple[Database, dict[str, Any], UserEvent]


async def store(db: Database, row: dict[str, Any], event: UserEvent) -> UserEvent:
    """Store the order `row` and its first `event` (numbered once committed); the event."""

    def in_session(session: Session) -> UserEvent:
        writes.stage_order(session, row)  # group commit: one statement for the whole group's orders
        events.append(session, event.user_id, event.type, event.payload, event.ts, on_seq=event.numbered)
        return event

    if not journal.available(db):
        return await db.grouped.write(in_session)

    async def alone() -> UserEvent:
        event.numbered(await journal.order_with_event(db, row, event.user_id, event.type, event.payload, event.ts))
        return event

    return await db.grouped.write(in_session, alone, (_store_group, (db, row, event)))


async def _store_group(entries: list[Entry]) -> list[UserEvent]:
    """A whole group's orders and first events as one statement (every entry has the same database)."""
    db = entries[0][0]
    seqs = await journal.orders_with_events(
        db, [(row, event.user_id, event.type, event.payload, event.ts) for _, row, event in entries]
    )
    for (*_, event), seq in zip(entries, seqs, strict=True):
        event.numbered(seq)
    return [event for *_, event in entries]
