"""One exchange account's worker: its venue client, its job queue (so its commands keep their order and a slow or
throttled account never holds up another) and its user-data stream. The rules of DESIGN.md §3:

- persist before send: the order's `sent_at` is committed before the venue call; the venue sees our deterministic
  client order id (`tw<order id>`), so a repeated send can never create a second order;
- an ambiguous outcome (timeout, 5xx, dropped connection) is not a rejection: the order stays in flight and is
  resolved by asking the venue for that client order id, re-sent only if the venue says it never arrived;
- 429/418: the account pauses for Retry-After (the user is told with a NOTICE event), then the same order is sent
  again (a loop, never recursion);
- a bracket's exits are sent together as one venue order list (Binance OCO);
- a replacement (modify/replace) is sent with the cancel of the order it replaces as one venue request
  (Binance cancelReplace); exchange_replace.py.
What the venue answers is recorded by the host (app/execution/exchange.py) through the one recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlmodel import Session

from app.domain import OrderStatus, OrderType, SymbolRules
from app.errors import VenueKeyRejected, VenueRejected, VenueThrottled, VenueUnavailable
from app.execution.exchange_replace import Replacements, order_spec
from app.execution.records import OrderRecord
from app.ids import now_ms, venue_client_order_id
from app.retry import RetryPolicy, retry
from app.venues.base import ExternalVenue, OcoSpec, VenueBalance, VenueOrder
from storage.models import Account, Order
from storage.repositories import orders

if TYPE_CHECKING:
    from app.execution.exchange import ExchangeExecutor

log = logging.getLogger(__name__)

T = TypeVar("T")
# Waiting for the venue's answer is bounded: past this, the job gives up and the periodic reconciliation (every
# 30 s) asks again; the order stays in flight meanwhile, never re-sent blindly.
VENUE_ANSWER_RETRY = RetryPolicy(initial=0.5, maximum=30.0, deadline=120.0)
VENUE_FORGOT = "The venue no longer knows this order (Spot Testnet is reset from time to time)."
# A PENDING order never sent this long after it was stored lost its submit job (a database error while marking it
# sent, a request cancelled between intake's commit and the hand-over): reconciliation sends it. Younger ones may
# still have their job queued; a second submit finds the order sent and does nothing.
UNSENT_AFTER_MS = 5_000


@dataclass(frozen=True, slots=True)
class Job:
    kind: str  # submit | cancel | resolve | reconcile
    order_id: str | None = None


class AccountWorker:
    """Owns one exchange account's venue client, its command queue and its user-data stream."""

    def __init__(self, host: ExchangeExecutor, account: Account, venue: ExternalVenue) -> None:
        self.host = host
        self.account = account
        self.venue = venue
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.rules: Mapping[str, SymbolRules] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._notices: set[asyncio.Task[None]] = set()
        self.replacing = Replacements(self)

    async def start(self) -> None:
        self.rules = await self.venue.load_rules()
        self.host.venues.remember_rules(self.rules)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"venue-{self.account.id}"),
            asyncio.create_task(self.venue.watch(self._on_stream_order, self._on_balances), name="user-data"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.venue.close()

    async def idle(self) -> None:
        await self.jobs.join()

    async def _work(self) -> None:
        while True:
            job = await self.jobs.get()
            refused: VenueKeyRejected | None = None
            try:
                await self._run(job)
            except VenueKeyRejected as exc:
                refused = exc
            except Exception:
                log.exception("job %s of account %s failed", job, self.account.id)
            finally:
                self.jobs.task_done()
            if refused is not None:  # retrying cannot help: the account needs a new key
                await self.host.key_rejected(self, refused.message)
                return

    def take_remaining(self) -> list[Job]:
        """The jobs still queued (the worker is being retired)."""
        left = []
        while not self.jobs.empty():
            left.append(self.jobs.get_nowait())
            self.jobs.task_done()
        return left

    async def _run(self, job: Job) -> None:
        if job.kind == "submit" and job.order_id:
            await self._submit(job.order_id)
        elif job.kind == "cancel" and job.order_id:
            await self._with_retries(lambda: self._cancel(job.order_id))  # type: ignore[arg-type]
        elif job.kind == "resolve" and job.order_id:
            await self._resolve(job.order_id)
        elif job.kind == "reconcile":
            await self._with_retries(self._reconcile)

    # ---- submit -------------------------------------------------------------------------------------------------

    async def _submit(self, order_id: str) -> None:
        """Persist before send, then send; a 429 waits and sends again (a loop: the same client order id)."""
        while True:
            leg = await self.host.db.read(lambda s: orders.get(s, order_id))
            if leg is not None and leg.oco_group is not None:
                await self._submit_oco(leg.oco_group, order_id)
                return
            if leg is not None and leg.replaces is not None:
                await self.replacing.submit(order_id)
                return
            order = await self.host.mark_sent(self.account, [order_id])
            if not order:
                return
            if await self._send(order[0]):
                return

    async def _send(self, order: OrderRecord) -> bool:
        """Send one order; False when the venue asked us to wait (unmarked: send again after the pause)."""
        order_id = order.id
        try:
            report = await self.venue.submit(order_spec(order))
        except VenueRejected as exc:
            await self.host.record_status(self.account, order_id, OrderStatus.REJECTED, exc.message)
            if isinstance(exc, VenueKeyRejected):
                raise
        except VenueThrottled as exc:
            await self.host.unmark_sent(self.account, [order_id])
            await self._pause(exc)
            return False
        except VenueUnavailable:
            log.warning("order %s is in flight after a venue failure; resolving by client order id", order_id)
            await self._resolve(order_id)
        else:
            await self.host.record(self.account, report, self.rules)
        return True

    async def _resolve(self, order_id: str) -> None:
        """An order that may be at the venue: ask for it by client order id; re-send only if it never arrived."""
        order = await self.host.db.read(lambda s: orders.get(s, order_id))
        if order is None:
            return
        if order.oco_group is not None:
            await self._resolve_oco(order.oco_group, order_id)
            return
        if order.replaces is not None:
            await self.replacing.resolve(order_id)
            return
        report = await self._fetch_until_answered(order.symbol, venue_client_order_id(order.id))
        if report is not None:
            await self.host.record(self.account, report, self.rules)
            return
        if order.status == OrderStatus.PENDING:
            await self.host.unmark_sent(self.account, [order_id])
            await self._submit(order_id)  # the venue never saw it: sending the same client order id is safe

    async def _fetch_until_answered(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """fetch_order, retried (with backoff, or the venue's Retry-After) until the venue answers definitively
        or VENUE_ANSWER_RETRY's deadline passes (the periodic reconciliation asks again later)."""
        return await self._with_retries(lambda: self.venue.fetch_order(symbol, client_order_id))

    # ---- brackets: the exit pair as one venue OCO ---------------------------------------------------------------

    async def _submit_oco(self, group: str, order_id: str) -> None:
        """Send both exits of a bracket in one order list. Persist before send, as for single orders: both legs get
        `sent_at` first; an ambiguous failure is resolved by looking both legs up by client order id. A 429 waits
        and sends again (a loop)."""
        while True:
            legs = await self.host.mark_sent(self.account, await self._leg_ids(order_id))
            if not legs or await self._send_oco(group, legs):
                return

    async def _leg_ids(self, order_id: str) -> list[str]:
        def load(session: Session) -> list[str]:
            leg = orders.get(session, order_id)
            return [] if leg is None else [leg.id, *(other.id for other in orders.siblings(session, leg))]

        return await self.host.db.read(load)

    async def _send_oco(self, group: str, legs: list[OrderRecord]) -> bool:
        order_id = legs[0].id
        take_profit = next(leg for leg in legs if leg.type == OrderType.LIMIT)
        stop_loss = next(leg for leg in legs if leg.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT))
        assert take_profit.price is not None and stop_loss.stop_price is not None and stop_loss.quantity is not None
        spec = OcoSpec(
            list_client_order_id=venue_client_order_id(group),
            symbol=stop_loss.symbol,
            side=stop_loss.side,
            quantity=stop_loss.quantity,
            take_profit_client_order_id=venue_client_order_id(take_profit.id),
            take_profit_price=take_profit.price,
            stop_loss_client_order_id=venue_client_order_id(stop_loss.id),
            stop_price=stop_loss.stop_price,
            stop_limit_price=stop_loss.price,
        )
        try:
            reports = await self.venue.submit_oco(spec)
        except VenueRejected as exc:
            for leg in legs:
                await self.host.record_status(self.account, leg.id, OrderStatus.REJECTED, exc.message)
            if isinstance(exc, VenueKeyRejected):
                raise
        except VenueThrottled as exc:
            await self.host.unmark_sent(self.account, [leg.id for leg in legs])
            await self._pause(exc)
            return False
        except VenueUnavailable:
            log.warning("bracket exits %s are in flight after a venue failure; resolving by client order id", group)
            await self._resolve_oco(group, order_id)
        else:
            for report in reports:
                await self.host.record(self.account, report, self.rules)
        return True

    async def _resolve_oco(self, group: str, order_id: str) -> None:
        """Bracket legs that may be at the venue: look each up; the list is atomic, so if neither leg arrived the
        pair is sent again (same client order ids)."""

        def load(session: Session) -> list[Order]:
            leg = orders.get(session, order_id)
            return [] if leg is None else [leg, *orders.siblings(session, leg)]

        legs = await self.host.db.read(load)
        found = False
        for leg in legs:
            report = await self._fetch_until_answered(leg.symbol, venue_client_order_id(leg.id))
            if report is not None:
                found = True
                await self.host.record(self.account, report, self.rules)
        if not found and legs and all(leg.status == OrderStatus.PENDING for leg in legs):
            await self.host.unmark_sent(self.account, [leg.id for leg in legs])
            await self._submit_oco(group, order_id)

    # ---- cancel, reconcile --------------------------------------------------------------------------------------

    async def _cancel(self, order_id: str) -> None:
        order = await self.host.db.read(lambda s: orders.get(s, order_id))
        if order is None or OrderStatus(order.status).is_terminal:
            return
        if order.status == OrderStatus.PENDING and order.sent_at is None:
            return  # the submit job will see the cancel request before sending
        client_id = venue_client_order_id(order.id) if not order.external else order.client_order_id
        try:
            report: VenueOrder | None = await self.venue.cancel(order.symbol, client_id)
        except VenueRejected:
            report = await self.venue.fetch_order(order.symbol, client_id)  # e.g. filled meanwhile: take the truth
        if report is not None:
            await self.host.record(self.account, report, self.rules)
        elif order.status != OrderStatus.PENDING:
            # The venue has no such order (Spot Testnet is wiped from time to time): the cancel completes here.
            await self.host.record_status(self.account, order.id, OrderStatus.CANCELED, VENUE_FORGOT)
        if order.oco_group is not None:  # the venue cancels the whole list: take the other leg's state too
            siblings = await self.host.db.read(lambda s: orders.siblings(s, order))
            for other in siblings:
                if OrderStatus(other.status).is_open and other.sent_at is not None:
                    sibling = await self.venue.fetch_order(other.symbol, venue_client_order_id(other.id))
                    if sibling is not None:
                        await self.host.record(self.account, sibling, self.rules)

    async def _reconcile(self) -> None:
        """Compare with the venue: every order of ours that may be there, every open order it has, balances. An
        open order the venue no longer knows (a testnet wipe) ends EXPIRED with the reason; one that never arrived
        is sent again, and so is one never sent whose submit job was lost (UNSENT_AFTER_MS)."""
        ours = await self.host.db.read(lambda s: orders.open_for_account(s, self.account.id))
        unsent_before = now_ms() - UNSENT_AFTER_MS
        for order in ours:
            if order.status == OrderStatus.PENDING and order.sent_at is None:
                if order.created_at <= unsent_before:  # its submit job was lost: send it (a repeat is a no-op)
                    await self.jobs.put(Job("submit", order.id))
                continue
            client_id = order.client_order_id if order.external else venue_client_order_id(order.id)
            report = await self.venue.fetch_order(order.symbol, client_id)
            if report is not None:
                await self.host.record(self.account, report, self.rules)
            elif order.status == OrderStatus.PENDING:
                await self.jobs.put(Job("submit", order.id))  # sent_at set but never arrived
            else:
                await self.host.record_status(self.account, order.id, OrderStatus.EXPIRED, VENUE_FORGOT)
        for report in await self.venue.open_orders():
            await self.host.record(self.account, report, self.rules)
        await self._on_balances(await self.venue.balances())

    async def _with_retries(self, action: Callable[[], Awaitable[T]]) -> T:
        """The one retry loop (app/retry.py) for venue calls: 5xx/timeouts back off, a 429 waits its Retry-After
        (the user is told with a NOTICE); bounded by VENUE_ANSWER_RETRY's deadline."""

        def on_retry(attempt: int, exc: Exception, delay: float) -> None:
            if isinstance(exc, VenueThrottled):
                task = asyncio.create_task(self._throttled(exc))
                self._notices.add(task)  # keep a reference until it is done
                task.add_done_callback(self._notices.discard)

        return await retry(
            action,
            policy=VENUE_ANSWER_RETRY,
            retry_on=(VenueUnavailable, VenueThrottled),
            sleep=self.host.sleep,
            on_retry=on_retry,
        )

    async def _throttled(self, exc: VenueThrottled) -> None:
        await self.host.notice(self.account, "VENUE_THROTTLED", exc.message, exc.retry_after)

    async def pause(self, exc: VenueThrottled) -> None:
        await self._pause(exc)

    async def fetch_until_answered(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        return await self._fetch_until_answered(symbol, client_order_id)

    async def _pause(self, exc: VenueThrottled) -> None:
        await self._throttled(exc)
        await self.host.sleep(exc.retry_after)

    # ---- stream -------------------------------------------------------------------------------------------------

    async def _on_stream_order(self, report: VenueOrder) -> None:
        await self.host.record(self.account, report, self.rules)

    async def _on_balances(self, balances: list[VenueBalance]) -> None:
        await self.host.mirror_balances(self.account, balances)
