"""Which accounts this replica executes (CLUSTER mode; docs/scaling.md). Accounts hash into a fixed number of
partitions; the replica holding a partition's lease owns its accounts. Without a cluster there is no scope and
the one process owns everything.

An executor takes a `view()` when a unit of work starts (a paper batch, an exchange write) and calls its
`fence(session)` first in that work's transaction: it re-checks, inside the transaction, that the leases the work
started under are still this replica's (fencing tokens), so a replica that lost a lease (paused past its expiry,
cut off from the database) can no longer commit anything for the partition, even if it has not noticed yet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session

from app.cluster.leases import Lease, LeaseLost, fence
from app.cluster.partitions import partition_lease_name, partition_of


@dataclass(frozen=True, slots=True)
class ScopeView:
    """The leases held at one moment."""

    partitions: int
    leases: dict[int, Lease]

    def owns(self, account_id: str) -> bool:
        return partition_of(account_id, self.partitions) in self.leases

    def fence(self, session: Session) -> None:
        """Raise LeaseLost unless every lease of this view is still ours (call first in a write transaction)."""
        if self.leases:
            fence(session, self.leases.values())

    def require(self, account_ids: Iterable[str]) -> None:
        """Raise LeaseLost (naming the partitions' leases) if any account is outside this view: a batch must not
        write for a partition given up or lost since memory was loaded, even one whose lease the fence no longer
        checks because the view does not hold it."""
        outside = sorted({partition_of(a, self.partitions) for a in account_ids} - self.leases.keys())
        if outside:
            raise LeaseLost([partition_lease_name(p) for p in outside])

    def fence_account(self, session: Session, account_id: str) -> None:
        """Raise LeaseLost unless the lease of this account's partition is still ours."""
        lease = self.leases.get(partition_of(account_id, self.partitions))
        if lease is None:
            raise LeaseLost([f"account {account_id}"])
        fence(session, (lease,))


class PartitionScope:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.leases: dict[int, Lease] = {}  # partition -> the lease it is held under

    def partition(self, account_id: str) -> int:
        return partition_of(account_id, self.partitions)

    def owns(self, account_id: str) -> bool:
        return partition_of(account_id, self.partitions) in self.leases

    def add(self, partition: int, lease: Lease) -> None:
        self.leases[partition] = lease

    def drop(self, partition: int) -> None:
        self.leases.pop(partition, None)

    def view(self) -> ScopeView:
        return ScopeView(self.partitions, dict(self.leases))
