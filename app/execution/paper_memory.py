"""The paper executor's memory and the database: a batch's order records and an account's balances, positions and
owner loaded on first use, and a batch's touched balances turned into rows to write and BALANCE_UPDATE events."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.domain import fmt
from app.execution.changes import Changes
from app.execution.commands import PaperCommand, SubmitOrder, SubmitOrderList
from app.execution.paper_failures import in_list
from app.execution.records import OrderRecord
from app.ids import now_ms
from app.portfolio import PositionState
from app.venues.paper_ledger import PaperLedger
from storage.db import Database
from storage.repositories import accounts as account_repo
from storage.repositories import orders as order_repo


async def prepare_batch(db: Database, batch: list[PaperCommand], live: dict[str, OrderRecord]) -> list[PaperCommand]:
    """Read what the batch needs and memory lacks (records of recovered submits) in one go; drop a repeated submit
    of the same order, and one of an order still `live` in memory."""
    # An order list's legs are always read from the journal: a carried copy may be older than a batch that ran.
    wanted = [c.order_id for c in batch if isinstance(c, SubmitOrder) and (c.record is None or in_list(c.record))]
    loaded: dict[str, OrderRecord] = {}
    lists: dict[str, list[OrderRecord]] = {}
    if wanted:
        rows = await db.read(lambda s: order_repo.rows_by_ids(s, wanted))
        loaded = {row["id"]: OrderRecord.from_row(row) for row in rows}
        groups = sorted({r.oco_group for r in loaded.values() if in_list(r) and r.oco_group is not None})
        if groups:
            for row in await db.read(lambda s: order_repo.rows_in_groups(s, groups)):
                leg = loaded[row["id"]] = OrderRecord.from_row(row)
                lists.setdefault(leg.oco_group or "", []).append(leg)
    prepared: list[PaperCommand] = []
    seen: set[str] = set()
    for command in batch:
        if isinstance(command, SubmitOrder):
            carried = command.record if command.record is not None and not in_list(command.record) else None
            record = carried or loaded.get(command.order_id)
            if record is None or command.order_id in seen or command.order_id in live:
                continue
            if in_list(record):
                legs = lists.get(record.oco_group or "", [record])
                seen.update(leg.id for leg in legs)
                prepared.append(SubmitOrderList(record.account_id, tuple(legs)))
                continue
            seen.add(command.order_id)
            command = SubmitOrder(command.order_id, command.account_id, command.venue, record)
        prepared.append(command)
    return prepared


async def load_accounts(
    db: Database,
    ledger: PaperLedger,
    positions: dict[tuple[str, str], PositionState],
    users: dict[str, str],
    account_ids: set[str],
) -> None:
    """Load the balances, positions and owners of the accounts the ledger does not hold yet."""
    missing = sorted(a for a in account_ids if not ledger.has_account(a))
    if not missing:
        return

    def load(session: Session) -> tuple[list[Any], list[Any], dict[str, str]]:
        return (
            account_repo.balance_rows(session, missing),
            order_repo.position_rows(session, missing),
            account_repo.owners(session, missing),
        )

    balances, position_rows, owners = await db.read(load)
    by_account: dict[str, list[Any]] = {account_id: [] for account_id in missing}
    for account_id, asset, free, locked in balances:
        by_account[account_id].append((asset, free, locked))
    for account_id, rows in by_account.items():
        ledger.load_account(account_id, rows)
    for row in position_rows:
        key = (row["account_id"], row["symbol"])
        positions[key] = PositionState(key[0], key[1], row["quantity"], row["cost"], row["realized_pnl"])
    users.update(owners)


def balance_changes(ledger: PaperLedger, users: dict[str, str], changes: Changes) -> None:
    """The balances the batch touched, to write, and one BALANCE_UPDATE per account: its non-zero balances plus
    every asset that changed (so a balance that went to zero is told too)."""
    now = now_ms()
    for account_id, assets in sorted(ledger.take_touched().items()):
        rows = []
        for asset, free, locked in ledger.snapshot(account_id):
            if asset in assets:
                changes.balances.append((account_id, asset, free, locked))
            if free or locked or asset in assets:
                rows.append({"asset": asset, "free": fmt(free), "locked": fmt(locked)})
        user_id = users.get(account_id)
        if user_id is not None:
            changes.event(user_id, "BALANCE_UPDATE", {"account_id": account_id, "balances": rows}, now)
