"""Venue reports in the recorder's terms: a Binance order view becomes a `Report`, matched to our order by client
order id; an order placed outside Tradewind becomes an external `OrderRecord`; positions are read once per
recording transaction, and the exchange's balance snapshot is mirrored."""

from __future__ import annotations

from sqlmodel import Session

from app.domain import fmt
from app.events import UserEvent
from app.execution import changes as batch_writes
from app.execution.changes import Changes
from app.execution.recorder import PositionSource
from app.execution.records import Execution, OrderRecord, Report
from app.ids import VENUE_CLIENT_ID_PREFIX, new_timed_id, now_ms
from app.portfolio import PositionState
from app.venues.base import VenueBalance, VenueOrder
from storage.models import Account, Position
from storage.repositories import accounts, orders, writes


def as_report(order_id: str, report: VenueOrder) -> Report:
    executions = tuple(
        Execution(f.price, f.quantity, f.fee, f.fee_asset, f.liquidity, f.ts, venue_trade_id=f.trade_id)
        for f in report.fills
    )
    return Report(order_id, report.status, executions, report.reason, venue_order_id=report.venue_order_id)


def positions_in(session: Session) -> PositionSource:
    """Positions read in the recording transaction, each once."""
    cache: dict[tuple[str, str], PositionState] = {}

    def get(account_id: str, symbol: str) -> PositionState:
        key = (account_id, symbol)
        if key not in cache:
            row = session.get(Position, key)
            cache[key] = (
                PositionState(account_id, symbol, row.quantity, row.cost, row.realized_pnl)
                if row is not None
                else PositionState(account_id, symbol)
            )
        return cache[key]

    return get


def imported(account: Account, report: VenueOrder) -> OrderRecord:
    """An order placed at the venue outside Tradewind: tracked as external, not ignored. Its fills are recorded by
    the report that found it."""
    order_id, now = new_timed_id()  # created_at is the id's millisecond (app/ids.py)
    return OrderRecord(
        id=order_id,
        user_id=account.user_id,
        account_id=account.id,
        client_order_id=report.client_order_id[:36],
        symbol=report.symbol,
        side=report.side or "BUY",
        type=report.type or "LIMIT",
        quantity=report.quantity,
        price=report.price,
        stop_price=report.stop_price,
        status=report.status,
        venue_order_id=report.venue_order_id,
        external=True,
        sent_at=now,
        created_at=now,
        updated_at=now,
    )


def mirror_balances_in(session: Session, account: Account, balances: list[VenueBalance]) -> list[UserEvent]:
    """Copy the exchange's balance snapshot, in the caller's transaction; the BALANCE_UPDATE to publish (the same
    as the paper venue's: non-zero balances plus every asset that changed)."""
    stored = {asset: (free, locked) for _, asset, free, locked in accounts.balance_rows(session, [account.id])}
    changed = [b for b in balances if stored.get(b.asset) != (b.free, b.locked)]
    rows = [{"account_id": account.id, "asset": b.asset, "free": b.free, "locked": b.locked} for b in changed]
    if rows:
        writes.upsert_balances(session, rows)
    current = {**stored, **{b.asset: (b.free, b.locked) for b in balances}}
    touched = {b.asset for b in changed}
    data = {
        "account_id": account.id,
        "balances": [
            {"asset": asset, "free": fmt(free), "locked": fmt(locked)}
            for asset, (free, locked) in sorted(current.items())
            if free or locked or asset in touched
        ],
    }
    changes = Changes()
    changes.event(account.user_id, "BALANCE_UPDATE", data, now_ms())
    batch_writes.write(session, changes)
    return changes.events


def find_order(session: Session, account: Account, report: VenueOrder) -> OrderRecord | None:
    """Our order that a venue report is about: by the client order id we sent (our order id behind a prefix), or
    by the user's own client order id; None if we did not place it (it is then imported)."""
    client_id = report.client_order_id
    if client_id.startswith(VENUE_CLIENT_ID_PREFIX):
        rows = orders.rows_by_ids(session, [client_id.removeprefix(VENUE_CLIENT_ID_PREFIX)])
        if rows and rows[0]["account_id"] == account.id:
            return OrderRecord.from_row(rows[0])
    found = orders.by_client_order_id(session, account.id, client_id)
    return OrderRecord.from_row(found.model_dump()) if found is not None else None
