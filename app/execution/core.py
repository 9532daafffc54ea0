"""The execution core's front: an explicit router from an account's venue to its executor (no default venue), and
the lifecycle (recovery, the supervised paper task, the PENDING sweeper, /health's view of it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from app.cluster.scope import PartitionScope
from app.domain import Venue
from app.execution.commands import CancelOrder, ForwardedReset, SubmitOrder
from app.execution.exchange import ExchangeExecutor
from app.execution.paper_engine import PaperExecutor
from app.ids import now_ms
from app.market.models import Trade
from app.open_orders import OpenOrderCounts
from app.tasks import cancel_and_wait
from app.venues.paper import PaperVenue
from storage.repositories import orders as order_repo

log = logging.getLogger(__name__)

SWEEP_AFTER_MS = 5_000
RESTART_DELAY = 1.0
STOP_WRITE_SECONDS = 5.0


class Executor(Protocol):
    def submit(self, command: SubmitOrder) -> None: ...
    def cancel(self, command: CancelOrder) -> None: ...


class Forwarder(Protocol):
    def forward(self, command: SubmitOrder | CancelOrder | ForwardedReset) -> None: ...
    def acknowledge(self, deliveries: list[str]) -> None: ...


class Scope(Protocol):
    def owns(self, account_id: str) -> bool: ...


class ExecutionCore:
    """What intake talks to: `submit` and `cancel` route each command to the executor of its account's venue
    (in a cluster, to the partition's owner when that is another replica: app/cluster/)."""

    def __init__(
        self, paper: PaperExecutor, external: Executor | None = None, open_orders: OpenOrderCounts | None = None
    ) -> None:
        self.paper_executor = paper
        self.open_orders = open_orders or paper.recorder.open_orders
        self.external = external
        self.routes: dict[Venue, Executor] = {Venue.PAPER: paper}
        if external is not None:
            self.routes[Venue.BINANCE_TESTNET] = external
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.scope: Scope | None = None  # CLUSTER mode: the accounts this replica executes
        self.forwarder: Forwarder | None = None  # ... and the way to the others' owners
        self._resets: set[asyncio.Task[None]] = set()

    @property
    def external_executor(self) -> ExchangeExecutor | None:
        return self.external if isinstance(self.external, ExchangeExecutor) else None

    def attach_cluster(self, scope: PartitionScope, forwarder: Forwarder) -> None:
        self.scope, self.forwarder = scope, forwarder
        self.paper_executor.scope = scope
        if self.external_executor is not None:
            self.external_executor.scope = scope

    def _forwarded(self, command: SubmitOrder | CancelOrder | ForwardedReset) -> bool:
        """In a cluster, a command for an account another replica holds goes to that replica."""
        if self.scope is None or self.forwarder is None or self.scope.owns(command.account_id):
            return False
        self.forwarder.forward(command)
        return True

    @property
    def paper(self) -> PaperVenue:
        return self.paper_executor.venue

    def executor(self, venue: Venue | str) -> Executor:
        try:
            return self.routes[Venue.of(venue)]
        except (KeyError, ValueError):
            raise LookupError(f"no executor for venue {venue!r}") from None

    def submit(self, command: SubmitOrder) -> None:
        if not self._forwarded(command):
            self.executor(command.venue).submit(command)

    def cancel(self, command: CancelOrder) -> None:
        if not self._forwarded(command):
            self.executor(command.venue).cancel(command)

    def deliver(self, command: SubmitOrder | CancelOrder | ForwardedReset) -> None:
        """A command another replica forwarded to this one, the partition's owner. Paper commands are
        acknowledged after their batch commits (PaperExecutor.after_batch); exchange ones once queued (the
        worker journals `sent_at` itself) and resets once done."""
        assert self.forwarder is not None and command.delivery is not None
        if isinstance(command, ForwardedReset):
            task = asyncio.create_task(self._forwarded_reset(command))
            self._resets.add(task)
            task.add_done_callback(self._resets.discard)
            return
        executor = self.executor(command.venue)
        if isinstance(command, SubmitOrder):
            executor.submit(command)
        else:
            executor.cancel(command)
        if command.venue != Venue.PAPER:
            self.forwarder.acknowledge([command.delivery])

    async def _forwarded_reset(self, command: ForwardedReset) -> None:
        assert self.forwarder is not None and command.delivery is not None
        try:
            await self.reset_account(command.account_id, command.user_id, command.balances)
        except Exception:
            log.exception("a forwarded paper reset of account %s failed", command.account_id)
        self.forwarder.acknowledge([command.delivery])

    def on_market_trade(self, trade: Trade) -> None:
        self.paper_executor.on_market_trade(trade)

    async def reset_account(self, account_id: str, user_id: str, balances: Mapping[str, Decimal]) -> None:
        """Reset a paper account; in a cluster, on a replica that does not hold it, the owner does it moments
        later (its BALANCE_UPDATE tells when)."""
        if not self._forwarded(ForwardedReset(account_id, user_id, dict(balances))):
            await self.paper_executor.reset_account(account_id, user_id, dict(balances))

    async def drain(self) -> None:
        """Wait until every queued paper command is processed (tests and benchmarks)."""
        await self.paper_executor.drain()

    # ---- lifecycle ------------------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """/health's `execution`: "ok" while the paper task runs, else "down"."""
        return "ok" if self._task is not None and not self._task.done() else "down"

    async def start(self) -> None:
        self._stopping = False
        self.open_orders.load(await self.paper_executor.db.read(order_repo.open_counts))
        await self.paper_executor.recorder.trading.load(self.paper_executor.db)  # the kill switch, before any order
        await self.paper_executor.recover()
        self._task = asyncio.create_task(self._supervise(), name="execution-paper")
        start = getattr(self.external, "start", None)
        if start is not None:
            await start()

    async def stop(self) -> None:
        self._stopping = True
        stop = getattr(self.external, "stop", None)
        if stop is not None:
            await stop()
        if self._task is not None and not self._task.done():
            # Outputs held back under load (app/execution/write_behind.py) are written, not left to a replay.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.paper_executor.write_held(), STOP_WRITE_SECONDS)
        await cancel_and_wait(self._task)
        self._task = None

    async def _supervise(self) -> None:
        """Run the paper executor; if it ever crashes, log it, rebuild its memory and start it again."""
        while not self._stopping:
            try:
                await self.paper_executor.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the paper execution task crashed; restarting it")
                await asyncio.sleep(RESTART_DELAY)
                with contextlib.suppress(Exception):
                    await self.paper_executor.recover(requeue=False)

    async def sweep_pending(self, older_than_ms: int = SWEEP_AFTER_MS) -> int:
        """Re-queue PENDING paper orders at least `older_than_ms` old that no command carries (a command lost
        without a restart, e.g. a request cancelled between its commit and its enqueue), and cancels asked for at
        least that long ago of orders still open. Returns how many."""
        executor = self.paper_executor
        before = now_ms() - older_than_ms
        found = await executor.db.read(lambda s: order_repo.pending_ids_before(s, Venue.PAPER, before))
        requeued = 0
        for order_id, account_id in found:
            if order_id not in executor.queued and executor.owns(account_id):
                executor.submit(SubmitOrder(order_id, account_id, Venue.PAPER))
                requeued += 1
        if requeued:
            log.warning("re-queued %d PENDING paper orders that no command carried", requeued)
        # A cancel whose command failed twice was dropped (app/execution/paper_failures.py): its request stays
        # stored on the open order, and is queued again here (a repeated cancel of a closed order does nothing).
        asked = await executor.db.read(lambda s: order_repo.cancel_requests_before(s, Venue.PAPER, before))
        asked = [(order_id, account_id) for order_id, account_id in asked if executor.owns(account_id)]
        for order_id, account_id in asked:
            executor.cancel(CancelOrder(order_id, account_id, Venue.PAPER))
        if asked:
            log.warning("re-queued %d cancels of paper orders still open", len(asked))
        return requeued + len(asked)
