"""Modify/replace on an exchange account (one `AccountWorker`'s part): the replacement and the cancel of the order
it replaces go out as ONE venue request (Binance `order/cancelReplace`, STOP_ON_FAILURE), with the same rules as
any order (DESIGN.md §3):

- persist before send: the replacement's `sent_at` is committed first; it carries its own deterministic client
  order id (`tw<its id>`), and the cancel half its own (`tr<its id>`), so a retry or a restart never places it
  twice: an ambiguous outcome is resolved by asking the venue for both orders, re-sent only if neither changed;
- the venue's answer is recorded half by half: the old order ends REPLACED (the venue echoes our cancel id on
  it, also on the user-data stream), the replacement is recorded like any placement; if the cancel failed (the
  old order filled meanwhile) the replacement ends REJECTED and the old order's state is taken from the venue;
  if the new order failed after the cancel, the old order is gone (REPLACED) and the replacement is REJECTED
  with the venue's reason, as on Binance.
"""

from __future__ import annotations

import logging
from dataclasses import replace as with_status
from typing import TYPE_CHECKING

from app.domain import OrderStatus
from app.errors import VenueKeyRejected, VenueRejected, VenueThrottled, VenueUnavailable
from app.execution.records import OrderRecord
from app.ids import replace_cancel_id, venue_client_order_id
from app.venues.base import OrderSpec, ReplaceSpec, VenueOrder
from storage.repositories import orders

if TYPE_CHECKING:
    from app.execution.exchange_worker import AccountWorker

log = logging.getLogger(__name__)

NO_LONGER_OPEN = "The order it replaces is no longer open."


def order_spec(order: OrderRecord) -> OrderSpec:
    """What the venue is asked to place for `order`, under our deterministic client order id."""
    return OrderSpec(
        client_order_id=venue_client_order_id(order.id),
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        quantity=order.quantity,
        quote_quantity=order.quote_quantity,
        price=order.price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force,
        trailing_delta_bps=order.trailing_delta_bps,
    )


class Replacements:
    """Sends and resolves one account's replacements through its worker (queue, venue, host)."""

    def __init__(self, worker: AccountWorker) -> None:
        self.worker = worker

    async def submit(self, order_id: str) -> None:
        """Persist before send, then send; a 429 waits and sends again (a loop: the same client ids)."""
        host, account = self.worker.host, self.worker.account
        while True:
            marked = await host.mark_sent(account, [order_id])
            if not marked:
                return
            new = marked[0]
            old = await self._replaced(new)
            if old is None:
                await host.record_status(account, new.id, OrderStatus.REJECTED, NO_LONGER_OPEN)
                return
            if await self._send(new, old):
                return

    async def _replaced(self, new: OrderRecord) -> OrderRecord | None:
        """The order `new` replaces, if it is still working at the venue."""
        assert new.replaces is not None
        replaced_id = new.replaces
        rows = await self.worker.host.db.read(lambda s: orders.rows_by_ids(s, [replaced_id]))
        if not rows:
            return None
        old = OrderRecord.from_row(rows[0])
        working = old.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
        return old if working and old.account_id == new.account_id else None

    async def _send(self, new: OrderRecord, old: OrderRecord) -> bool:
        """False when the venue asked us to wait (unmarked: send again after the pause)."""
        worker, host, account = self.worker, self.worker.host, self.worker.account
        spec = ReplaceSpec(venue_client_order_id(old.id), replace_cancel_id(new.id), order_spec(new))
        try:
            outcome = await worker.venue.replace(spec)
        except VenueRejected as exc:  # refused as a whole, before either half (filters, key)
            await host.record_status(account, new.id, OrderStatus.REJECTED, exc.message)
            if isinstance(exc, VenueKeyRejected):
                raise
            return True
        except VenueThrottled as exc:
            await host.unmark_sent(account, [new.id])
            await worker.pause(exc)
            return False
        except VenueUnavailable:
            log.warning("replacement %s is in flight after a venue failure; resolving by client order id", new.id)
            await self.resolve(new.id)
            return True
        if outcome.canceled is not None:
            await host.record(account, outcome.canceled, worker.rules)
        if outcome.new is not None:
            await host.record(account, outcome.new, worker.rules)
        elif outcome.new_error is not None:
            await host.record_status(account, new.id, OrderStatus.REJECTED, outcome.new_error)
        else:  # the cancel failed, nothing was placed: the old order ended meanwhile; take its state
            reason = f"{NO_LONGER_OPEN} ({outcome.cancel_error})" if outcome.cancel_error else NO_LONGER_OPEN
            await host.record_status(account, new.id, OrderStatus.REJECTED, reason)
            await self._take_venue_state(old, replaced=False)
        return True

    async def resolve(self, order_id: str) -> None:
        """A replacement that may have reached the venue: ask for it and for the order it replaces. Sent again
        (same client ids) only if the venue has no replacement and the old order still works there."""
        worker, host, account = self.worker, self.worker.host, self.worker.account
        rows = await host.db.read(lambda s: orders.rows_by_ids(s, [order_id]))
        if not rows:
            return
        new = OrderRecord.from_row(rows[0])
        assert new.replaces is not None
        old_rows = await host.db.read(lambda s: orders.rows_by_ids(s, [new.replaces or ""]))
        old = OrderRecord.from_row(old_rows[0]) if old_rows else None
        placed = await worker.fetch_until_answered(new.symbol, venue_client_order_id(new.id))
        if placed is not None:
            await host.record(account, placed, worker.rules)
        old_now = await self._take_venue_state(old, replaced=placed is not None) if old is not None else None
        if placed is not None or new.status != OrderStatus.PENDING:
            return
        if old_now is not None and old_now.status.is_open:
            await host.unmark_sent(account, [new.id])
            await self.submit(new.id)  # neither half happened: sending the same ids again is safe
        elif old_now is not None and old_now.status is OrderStatus.CANCELED:
            # Canceled by our replace whose new half failed (Binance's 409): the replacement was refused.
            await host.record_status(account, new.id, OrderStatus.REJECTED, "The venue did not place the replacement.")
        else:
            await host.record_status(account, new.id, OrderStatus.REJECTED, NO_LONGER_OPEN)

    async def _take_venue_state(self, old: OrderRecord | None, *, replaced: bool) -> VenueOrder | None:
        """Record the venue's view of the replaced order; a cancel seen after its replacement exists is REPLACED
        (an order query does not echo the cancel's id)."""
        if old is None:
            return None
        worker = self.worker
        report = await worker.fetch_until_answered(old.symbol, venue_client_order_id(old.id))
        if report is None:
            return None
        if report.status is OrderStatus.CANCELED and replaced:
            report = with_status(report, status=OrderStatus.REPLACED)
        await worker.host.record(worker.account, report, worker.rules)
        return report
