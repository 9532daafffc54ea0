"""The loop that keeps one replica's share of a set of leases (the partitions `exec:<p>`, or `["feed"]`).

Each round (every ttl/3 by default): heartbeat (also between the partitions a long round takes or gives back);
end the database sessions that replicas which stopped heartbeating left inside a transaction (their locks would
block a takeover, even this replica's own renewals: `LeaseStore.end_sessions_of_dead_members`); renew every
owned lease (a failed renew drops it at once, `on_lost`); then take free or expired leases up to
`ceil(len(names) / live replicas)`, starting at a per-replica offset so replicas do not all fight for the same
names; and give back the surplus when more replicas are alive (`on_releasing` drains and drops the state first,
then the lease is released so another replica takes it at once).

A callback that raises is logged and its lease released (or dropped): it never stops the loop. Database calls go
through the project's one retry loop (app/retry.py); a round that still fails is logged and the next round tries
again. Safety does not depend on this loop's timing: every write of an owner is fenced by its token
(`leases.fence`), so a replica that stalls past its lease commits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from app.cluster.leases import Lease, LeaseStore
from app.retry import RetryPolicy, retry
from storage.db import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")
# A round's database call: a few quick tries, then the round gives up and the next one starts over.
DATABASE_CALL = RetryPolicy(initial=0.1, maximum=1.0, max_attempts=3)


class Ownership:
    """Acquire, renew and hand back leases of `names` for one replica (see the module docstring).

    `owned` maps a name to its current lease; a name enters it only after `on_acquired(lease)` returned, and
    leaves it before `on_lost(name)` is awaited, or after `on_releasing(name)` returned (so a draining batch can
    still fence with `lease(name)`)."""

    def __init__(
        self,
        store: LeaseStore,
        names: Sequence[str],
        *,
        on_acquired: Callable[[Lease], Awaitable[None]],
        on_lost: Callable[[str], Awaitable[None]],
        on_releasing: Callable[[str], Awaitable[None]] | None = None,
        interval_ms: int | None = None,
        heartbeat: bool = True,
    ) -> None:
        self.store = store
        self.names = list(dict.fromkeys(names))
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.on_releasing = on_releasing
        # False for a single lease that is not a share of the work (the feed): this loop then never counts its
        # owner id as a live replica (the partitions' loop does, once per replica).
        self.heartbeat = heartbeat
        self.interval = (interval_ms if interval_ms is not None else store.ttl_ms // 3) / 1000
        self.owned: dict[str, Lease] = {}
        # Where this replica starts looking for free names (and which it keeps when giving back a surplus).
        start = zlib.crc32(store.owner.encode()) % len(self.names) if self.names else 0
        self._preference = self.names[start:] + self.names[:start]
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_beat = 0.0

    def lease(self, name: str) -> Lease | None:
        """The lease of `name` if this replica owns it (to fence its writes), else None."""
        return self.owned.get(name)

    async def start(self) -> None:
        """Run one round now (a single replica owns its share once this returns), then every interval."""
        self._stopping.clear()
        await self._round()
        self._task = asyncio.create_task(self._run(), name=f"ownership-{self.store.owner}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop the loop (the current round finishes). `release`: hand every lease over at once (`on_releasing`,
        then release) and leave the cluster; otherwise leave the leases to expire after the ttl, as a crash would.
        Either way `owned` is empty afterwards."""
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                async with asyncio.timeout(max(self.store.ttl_ms / 1000, 1.0)):
                    await task
            except TimeoutError:
                log.warning("ownership round of %s did not finish in time; cancelled", self.store.owner)
        if not release:
            self.owned.clear()
            return
        for name in list(self.owned):
            await self._give_back(name)
        if self.heartbeat:
            with contextlib.suppress(Exception):
                await self._db(self.store.leave)

    async def tick(self) -> None:
        """One round: heartbeat, end dead replicas' sessions, renew, then acquire up to the target or give back the
        surplus. The sessions go first: this replica's own batch may wait on a lock of a frozen replica, and a
        renewal waits for that batch (its fence holds the lease rows FOR SHARE)."""
        if self.heartbeat:
            await self._beat()
            if ended := await self._db(self.store.end_sessions_of_dead_members):
                log.warning("ended %d database sessions that replicas which stopped heartbeating left open", ended)
        for name, lease in list(self.owned.items()):
            if not await self._db(functools.partial(self.store.renew, lease)):
                del self.owned[name]
                log.warning("lease %s (token %d) was lost: dropping it", name, lease.token)
                await self._callback(self.on_lost, name, name)
        target = math.ceil(len(self.names) / await self._db(self.store.live_members))
        if len(self.owned) < target:
            await self._acquire_up_to(target)
        elif len(self.owned) > target:
            keep = [name for name in self._preference if name in self.owned][:target]
            for name in [name for name in self._preference if name in self.owned and name not in keep]:
                await self._give_back(name)

    async def _acquire_up_to(self, target: int) -> None:
        wanted = [name for name in self._preference if name not in self.owned]
        for name in await self._db(functools.partial(self.store.takeable, wanted)):
            if len(self.owned) >= target or self._stopping.is_set():
                return
            await self._beat_if_due()  # taking many partitions (a rebuild each) can outlast a ttl
            lease = await self._db(functools.partial(self.store.acquire, name))
            if lease is None:  # another replica was faster
                continue
            if await self._callback(self.on_acquired, lease, lease.name):
                self.owned[name] = lease
                log.info("acquired lease %s (token %d)", name, lease.token)
            else:
                await self._release(lease)

    async def _give_back(self, name: str) -> None:
        """Drain and drop the state (`on_releasing`), then release, so the next owner starts at once."""
        await self._beat_if_due()  # a graceful stop drains its partitions one by one
        lease = self.owned[name]
        if self.on_releasing is not None:
            await self._callback(self.on_releasing, name, name)
        self.owned.pop(name, None)
        await self._release(lease)
        log.info("released lease %s (token %d)", name, lease.token)

    async def _beat(self) -> None:
        await self._db(self.store.heartbeat)
        self._last_beat = time.monotonic()

    async def _beat_if_due(self) -> None:
        """Heartbeat inside a long round too: a replica is live while its loop runs, however long a round takes
        (peers end the sessions of a replica that stopped heartbeating)."""
        if self.heartbeat and time.monotonic() - self._last_beat >= self.interval:
            with contextlib.suppress(Exception):  # the round's own calls report a database that is away
                await self._beat()

    async def _release(self, lease: Lease) -> None:
        try:
            await self._db(functools.partial(self.store.release, lease))
        except Exception:
            log.exception("releasing lease %s failed; it expires after the ttl", lease.name)

    async def _callback(self, callback: Callable[[T], Awaitable[None]], argument: T, name: str) -> bool:
        try:
            await callback(argument)
        except Exception:
            log.exception("%s for lease %s failed", getattr(callback, "__name__", "callback"), name)
            return False
        return True

    async def _db(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry(
            call,
            policy=DATABASE_CALL,
            retry_on=is_transient,
            on_retry=lambda n, _, delay: log.warning("lease database call failed (try %d); again in %.2f s", n, delay),
        )

    async def _round(self) -> None:
        try:
            await self.tick()
        except Exception:
            log.exception("ownership round of %s failed; the next one tries again", self.store.owner)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            await self._round()
