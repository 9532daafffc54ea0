"""What the paper executor does with a command that failed on its own (after its batch was replayed command by
command): its order is rejected rather than retried forever. And the small rules replays (and commands of
partitions no longer held) need."""

from __future__ import annotations

import contextlib
import logging

from sqlmodel import Session

from app.cluster.leases import LeaseLost
from app.cluster.scope import ScopeView
from app.domain import OrderStatus, Venue
from app.events import UserEvent
from app.execution import changes as batch_writes
from app.execution.changes import Changes
from app.execution.commands import PaperCommand, ResetAccount, SubmitOrder, SubmitOrderList
from app.execution.recorder import Recorder
from app.execution.records import OrderRecord
from storage.db import Database
from storage.repositories import orders as order_repo

log = logging.getLogger(__name__)


async def reject_failed(
    db: Database, recorder: Recorder, command: PaperCommand, view: ScopeView | None = None
) -> list[UserEvent]:
    """Reject the order of a command that cannot be applied; the events to publish (none if that failed too)."""
    log.error("command %s failed; its order is rejected", command)
    if isinstance(command, ResetAccount):
        if not command.done.done():
            command.done.set_exception(RuntimeError("paper reset failed"))
        return []
    if not isinstance(command, SubmitOrder):
        return []
    order_id, account_id = command.order_id, command.account_id

    def reject(session: Session) -> list[UserEvent]:
        if view is not None:
            view.fence_account(session, account_id)
        rows = order_repo.rows_by_ids(session, [order_id])
        changes = Changes()
        if rows:
            order = OrderRecord.from_row(rows[0])
            recorder.transition(order, OrderStatus.REJECTED, "internal error; nothing executed", changes)
        batch_writes.write(session, changes)
        return changes.events

    with contextlib.suppress(Exception):
        return await db.write(reject)
    return []


def fresh(command: PaperCommand) -> PaperCommand:
    """The command as it was journaled: a replay reads its order again (memory was rebuilt)."""
    if isinstance(command, SubmitOrder):
        return SubmitOrder(command.order_id, command.account_id, command.venue)
    if isinstance(command, SubmitOrderList):
        return SubmitOrder(command.records[0].id, command.account_id, Venue.PAPER)
    return command


def in_list(order: OrderRecord) -> bool:
    """A leg of a stand-alone order list (a bracket's exits have a parent and are submitted by the recorder)."""
    return order.oco_group is not None and order.parent_id is None


def refuse(command: PaperCommand) -> bool:
    """A paper reset of an account this replica no longer holds fails (the caller may try again); other commands
    are dropped: their orders are journaled and the partition's new owner re-reads them."""
    if isinstance(command, ResetAccount) and not command.done.done():
        command.done.set_exception(LeaseLost([f"account {command.account_id}"]))
    return False
