"""A batch's outputs, collected in memory and written in one transaction with Core `executemany` statements:
new and changed orders, fills, balances, positions and events. Events are published only after that commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from app.events import UserEvent
from app.execution.records import EXECUTION_COLUMNS, OrderRecord
from app.portfolio import PositionState
from storage.db import Database
from storage.repositories import engine_statement, engine_writes, writes
from storage.repositories import events as event_log


@dataclass(slots=True)
class Changes:
    inserted: dict[str, OrderRecord] = field(default_factory=dict)
    updated: dict[str, OrderRecord] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, str], PositionState] = field(default_factory=dict)
    balances: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)  # account, asset, free, locked
    removed_balances: list[tuple[str, str]] = field(default_factory=list)  # account, asset (paper reset)
    events: list[UserEvent] = field(default_factory=list)

    def insert(self, order: OrderRecord) -> None:
        self.inserted[order.id] = order

    def update(self, order: OrderRecord) -> None:
        if order.id not in self.inserted:  # a row inserted by this batch is written in its final state anyway
            self.updated[order.id] = order

    def event(self, user_id: str, type_: str, data: dict[str, Any], ts: int) -> UserEvent:
        """Append an event; its payload is serialised now (the order may change again later in the batch)."""
        event = UserEvent.create(user_id, type_, data, ts)
        self.events.append(event)
        return event

    def accounts(self) -> set[str]:
        """Every account whose orders, fills, positions or balances this batch changes."""
        touched = {o.account_id for o in self.inserted.values()} | {o.account_id for o in self.updated.values()}
        touched.update(fill["account_id"] for fill in self.fills)
        touched.update(account for account, _ in self.positions)
        touched.update(account for account, *_ in self.balances)
        touched.update(account for account, _ in self.removed_balances)
        return touched

    def __bool__(self) -> bool:
        return bool(
            self.inserted or self.updated or self.fills or self.positions or self.balances or self.removed_balances
        ) or bool(self.events)


def fits_one_statement(changes: Changes) -> bool:
    """Whether PostgreSQL may store the batch as one statement (storage/repositories/engine_statement.py): not
    when it inserts orders or deletes balances (bracket exits, a paper reset), which take the session's way."""
    return not changes.inserted and not changes.removed_balances


# An engine write's token and the floor below which older tokens are pruned (storage/repositories/engine_writes.py).
WriteToken = tuple[str, str]


async def write_statement(db: Database, changes: Changes, token: WriteToken) -> None:
    """Store the batch with one statement on PostgreSQL (see `fits_one_statement`); number its events."""
    updated = [{"id": o.id, **{c: getattr(o, c) for c in EXECUTION_COLUMNS}} for o in changes.updated.values()]
    events = [(e.user_id, e.type, e.payload, e.ts) for e in changes.events]
    seqs = await engine_statement.write_outputs(
        db,
        updated,
        EXECUTION_COLUMNS,
        changes.fills,
        _position_rows(changes),
        _balance_rows(changes),
        events,
        token=token,
    )
    for event, seq in zip(changes.events, seqs, strict=True):
        event.numbered(seq)


def write(session: Session, changes: Changes, token: WriteToken | None = None) -> None:
    """Write everything in the caller's transaction (numbers the events at its commit), with the write's `token`
    when it has one."""
    if token is not None:
        engine_writes.store(session, *token)
    if changes.inserted:
        writes.insert_orders(session, [order.as_row() for order in changes.inserted.values()])
    if changes.updated:
        rows = [{"_key": o.id, **{c: getattr(o, c) for c in EXECUTION_COLUMNS}} for o in changes.updated.values()]
        writes.update_orders(session, EXECUTION_COLUMNS, rows)
    if changes.fills:
        writes.insert_fills(session, changes.fills)
    if changes.positions:
        writes.upsert_positions(session, _position_rows(changes))
    if changes.balances:
        writes.upsert_balances(session, _balance_rows(changes))
    if changes.removed_balances:
        writes.delete_balances(session, [{"_account": a, "_asset": s} for a, s in changes.removed_balances])
    for event in changes.events:
        event_log.append(session, event.user_id, event.type, event.payload, event.ts, on_seq=event.numbered)


def _position_rows(changes: Changes) -> list[dict[str, Any]]:
    return [
        {
            "account_id": p.account_id,
            "symbol": p.symbol,
            "quantity": p.quantity,
            "cost": p.cost,
            "realized_pnl": p.realized_pnl,
        }
        for p in changes.positions.values()
    ]


def _balance_rows(changes: Changes) -> list[dict[str, Any]]:
    return [{"account_id": a, "asset": s, "free": f, "locked": lk} for a, s, f, lk in changes.balances]
