"""Named leases with fencing tokens on the shared database (PostgreSQL in a cluster; SQLite works for tests).

A lease has one owner at a time until it expires; its token grows by one at every change of owner and is never
reused. Expiry uses the database's clock only. The owner's writes are fenced: `fence(session, leases)` inside the
write's own transaction checks that every lease still has this owner and token, and on PostgreSQL locks the rows
`FOR SHARE`, so a takeover (an UPDATE of the row) waits until the fenced transaction ends. A replica that was paused
past its lease and resumed therefore commits nothing: its token is stale, and its in-flight batch either commits
before the takeover or fails the check after it.

    store = LeaseStore(db, owner="replica-a", ttl_ms=10_000)
    lease = await store.acquire("exec:7")          # None while another replica holds it
    await store.renew(lease)                       # every ttl/3; False: lost, drop the state at once
    await db.write(lambda s: (fence(s, [lease]), write_batch(s)))   # raises LeaseLost if it was taken
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from storage.db import Database
from storage.repositories import leases as rows


class LeaseLost(Exception):
    """These leases are no longer ours (another owner, or a newer token): the transaction must not commit."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"lease lost: {', '.join(names)}")
        self.names = names


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    owner: str
    token: int


class LeaseStore:
    """One replica's view of the lease table: `owner` is its id (a new one per start)."""

    def __init__(self, db: Database, owner: str, ttl_ms: int = 10_000) -> None:
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        self.db = db
        self.owner = owner
        self.ttl_ms = ttl_ms

    async def acquire(self, name: str) -> Lease | None:
        """Take a missing (token 1) or expired (token + 1) lease, or renew our own live one (same token); None
        while another owner holds it, or while a batch of its owner has the row locked (it is writing under it)."""
        try:
            token = await self.db.write(lambda s: rows.acquire(s, name, self.owner, self.ttl_ms))
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != rows.LOCK_NOT_AVAILABLE:
                raise
            return None
        return None if token is None else Lease(name, self.owner, token)

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease by the ttl iff its owner and token still match; False: it was taken."""
        return await self.db.write(lambda s: rows.renew(s, lease.name, lease.owner, lease.token, self.ttl_ms))

    async def release(self, lease: Lease) -> None:
        """Expire the lease now iff it is still ours, so another replica can take it at once (with token + 1)."""
        await self.db.write(lambda s: rows.release(s, lease.name, lease.owner, lease.token))

    async def heartbeat(self) -> None:
        """Say this replica is alive (it counts in `live_members` for one ttl)."""
        await self.db.write(lambda s: rows.heartbeat(s, self.owner, self.ttl_ms))

    async def leave(self) -> None:
        """Stop counting as alive at once (graceful shutdown), instead of after the ttl."""
        await self.db.write(lambda s: rows.forget_member(s, self.owner))

    async def end_sessions_of_dead_members(self) -> int:
        """End the open transactions of replicas that stopped heartbeating, so their locks cannot block a takeover
        (storage/repositories/leases.py); returns how many."""
        return await self.db.write(lambda s: rows.end_sessions_of_dead_members(s, self.ttl_ms))

    async def live_members(self) -> int:
        """Replicas seen within the ttl, this one included (at least 1)."""
        return max(1, await self.db.read(lambda s: rows.live_members(s, self.ttl_ms)))

    async def takeable(self, names: list[str]) -> list[str]:
        """Those of `names` that `acquire` would give us now (missing, expired or ours), in their order. A hint
        read without locks: `acquire` still decides."""
        return await self.db.read(lambda s: rows.takeable(s, names, self.owner))

    async def holder(self, name: str) -> Lease | None:
        """Who holds the lease now (live or expired but not taken), or None if it never existed."""
        found = await self.db.read(lambda s: rows.holders(s, [name], for_share=False))
        return Lease(name, *found[name]) if name in found else None


def fence(session: Session, leases: Iterable[Lease]) -> None:
    """Inside the caller's write transaction, before its writes: raise LeaseLost unless every lease still has its
    owner and token. PostgreSQL: the rows stay locked `FOR SHARE` until the transaction ends, so a takeover waits
    for it. SQLite: a plain read (its single writer serialises transactions anyway). Expiry is not checked: a lease
    that expired but nobody took is still safe to write under — the token is what fences."""
    wanted = {lease.name: (lease.owner, lease.token) for lease in leases}
    if not wanted:
        return
    found = rows.holders(session, list(wanted), for_share=True)
    lost = sorted(name for name, holder in wanted.items() if found.get(name) != holder)
    if lost:
        raise LeaseLost(lost)
