"""CLUSTER mode's execution (docs/scaling.md): this replica's share of the partitions, held under leases, and the
commands that reach each partition's owner.

- `Ownership` (app/cluster/ownership.py) keeps ~1/N of the partitions per live replica, renewing their leases.
- Taking a partition: it joins the scope (intake now hands its commands to the local executors), the paper executor
  reloads memory between two batches and re-queues the partition's PENDING orders and stored cancel requests, the
  exchange executor starts the workers of its accounts (which resolve in-flight orders by client order id), and its
  command stream is read.
- Giving one up (a graceful stop, or a new replica to share with): it leaves the scope, the executors finish their
  running batch and drop its state, and only then is the lease released. Losing one (renewal failed): the same
  without waiting; anything still running for it is refused at commit by the fence (app/cluster/scope.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from app.cluster.command_streams import CommandStreams
from app.cluster.leases import Lease, LeaseStore
from app.cluster.ownership import Ownership
from app.cluster.partitions import partition_lease_name, partition_of_lease
from app.cluster.scope import PartitionScope
from app.config import Settings
from app.events import EventBus, UserEvent
from app.execution.commands import PaperCommand
from app.execution.core import ExecutionCore
from app.tasks import cancel_and_wait
from storage.db import Database
from storage.repositories import orders as order_repo

log = logging.getLogger(__name__)


OPEN_COUNTS_EVERY_SECONDS = 5.0


class ClusterExecution:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        core: ExecutionCore,
        bus: EventBus,
        replica_id: str,
        *,
        lease_db: Database | None = None,
    ) -> None:
        """`lease_db`: where the leases are kept and renewed (a Database of their own in a replica: see Services)."""
        self.db = db
        self.core = core
        self.replica_id = replica_id
        self.scope = PartitionScope(settings.cluster_partitions)
        self.streams = CommandStreams(
            settings.redis_url, self.scope, core.deliver, prefix=settings.redis_channel_prefix, consumer=replica_id
        )
        self.store = LeaseStore(lease_db or db, replica_id, ttl_ms=int(settings.lease_ttl_seconds * 1000))
        names = [partition_lease_name(p) for p in range(settings.cluster_partitions)]
        self.ownership = Ownership(
            self.store, names, on_acquired=self._acquired, on_lost=self._lost, on_releasing=self._releasing
        )
        core.attach_cluster(self.scope, self.streams)
        core.paper_executor.after_batch = self._executed
        bus.remote_listeners.append(self._remote_event)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.streams.start()
        await self.ownership.start()
        self._spawn(self._recount_forever())

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        await self.ownership.stop(release=True)  # hands the partitions over now, not after the lease expires
        await self.streams.stop()

    # ---- what other replicas change ------------------------------------------------------------------------

    def _remote_event(self, event: UserEvent) -> None:
        """The kill switch changed on another replica: intake here and the engine here read it from memory."""
        if event.type == "TRADING_STATE":
            self._spawn(self.core.paper_executor.recorder.trading.load(self.db))

    async def _recount_forever(self) -> None:
        """Open-order counts (the 200-per-symbol limit) move on the replicas that execute: re-read them."""
        while True:
            await asyncio.sleep(OPEN_COUNTS_EVERY_SECONDS)
            with contextlib.suppress(Exception):
                self.core.open_orders.load(await self.db.read(order_repo.open_counts))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _acquired(self, lease: Lease) -> None:
        partition = _partition(lease.name)
        self.scope.add(partition, lease)
        await self.core.paper_executor.rescope()
        external = self.core.external_executor
        if external is not None:
            await external.start(partition)
        self.streams.watch(partition)
        log.info("replica %s took partition %d (token %d)", self.replica_id, partition, lease.token)

    async def _lost(self, name: str) -> None:
        log.warning("replica %s lost partition %s (its lease was taken or could not be renewed)", self.replica_id, name)
        await self._give_up(name)

    async def _releasing(self, name: str) -> None:
        await self._give_up(name)
        log.info("replica %s gave partition %s up", self.replica_id, name)

    async def _give_up(self, name: str) -> None:
        partition = _partition(name)
        self.scope.drop(partition)
        self.streams.unwatch(partition)
        await self.core.paper_executor.rescope()  # a barrier: the running batch commits (or is fenced) first
        external = self.core.external_executor
        if external is not None:
            await external.give_up(partition)

    def _executed(self, batch: list[PaperCommand]) -> None:
        deliveries = [d for c in batch if (d := getattr(c, "delivery", None)) is not None]
        if deliveries:
            self.streams.acknowledge(deliveries)


def _partition(name: str) -> int:
    partition = partition_of_lease(name)
    assert partition is not None, f"{name} is not a partition's lease"
    return partition
