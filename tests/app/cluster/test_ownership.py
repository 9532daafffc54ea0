"""The ownership loop: replicas share a set of leases, hand them over on a graceful stop and take them after the
ttl when one dies. Rounds are driven with `tick()`; two replicas are two LeaseStores on the test database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from app.cluster.leases import Lease, LeaseStore
from app.cluster.ownership import Ownership
from app.cluster.partitions import partition_lease_name
from storage.db import Database

TTL_MS = 1000  # long enough that a loaded machine does not let a lease lapse between two steps of a test
NAMES = [partition_lease_name(p) for p in range(7)]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


class Replica:
    """One replica's Ownership with a record of its callbacks."""

    def __init__(self, db: Database, owner: str, *, fail_on: str | None = None) -> None:
        self.acquired: list[Lease] = []
        self.lost: list[str] = []
        self.releasing: list[str] = []
        self.fail_on = fail_on
        self.ownership = Ownership(
            LeaseStore(db, owner, TTL_MS),
            NAMES,
            on_acquired=self.on_acquired,
            on_lost=self.on_lost,
            on_releasing=self.on_releasing,
        )

    async def on_acquired(self, lease: Lease) -> None:
        assert self.ownership.lease(lease.name) is None  # not ours until loaded
        if lease.name == self.fail_on:
            raise RuntimeError("loading the partition failed")
        self.acquired.append(lease)

    async def on_lost(self, name: str) -> None:
        self.lost.append(name)

    async def on_releasing(self, name: str) -> None:
        assert self.ownership.lease(name) is not None  # a draining batch can still fence
        self.releasing.append(name)

    @property
    def names(self) -> set[str]:
        return set(self.ownership.owned)

    async def tick(self) -> None:
        await self.ownership.tick()


async def tick_until(condition: object, *replicas: Replica) -> None:
    """Run rounds of these replicas until `condition()` holds (polls; no fixed sleep decides the outcome)."""
    for _ in range(300):
        for replica in replicas:
            await replica.tick()
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the replicas never converged")


async def test_one_replica_takes_every_name(db: Database) -> None:
    a = Replica(db, "a")
    await a.tick()
    assert a.names == set(NAMES)
    assert sorted(lease.name for lease in a.acquired) == sorted(NAMES)
    assert all(lease.token == 1 and lease.owner == "a" for lease in a.acquired)
    assert a.ownership.lease("exec:3") == Lease("exec:3", "a", 1)
    await a.tick()  # renewed, nothing new
    assert len(a.acquired) == len(NAMES)


async def test_a_second_replica_joins_and_they_split_the_names(db: Database) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    await a.tick()
    await tick_until(lambda: len(a.names) + len(b.names) == len(NAMES) and b.names, a, b)
    assert a.names.isdisjoint(b.names)
    assert a.names | b.names == set(NAMES)
    assert {len(a.names), len(b.names)} == {3, 4}
    assert sorted(a.releasing) == sorted(b.names)  # a drained what it gave back
    assert all(lease.token == 2 for lease in b.acquired)  # released, then taken: the next token
    for _ in range(3):  # and it stays split
        await a.tick()
        await b.tick()
    assert a.names | b.names == set(NAMES) and a.names.isdisjoint(b.names)
    assert not a.lost and not b.lost


async def test_a_graceful_stop_hands_everything_over_at_once(db: Database) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    await a.tick()
    await tick_until(lambda: b.names and len(a.names) + len(b.names) == len(NAMES), a, b)
    a_had = a.names
    await a.ownership.stop(release=True)
    assert a.names == set() and set(a.releasing) >= a_had
    await b.tick()  # one round, no waiting for a ttl
    assert b.names == set(NAMES)


async def test_a_dead_replica_s_names_move_after_the_ttl_with_new_tokens(db: Database) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    await a.tick()
    await tick_until(lambda: b.names and len(a.names) + len(b.names) == len(NAMES), a, b)
    a_had = {name: a.ownership.owned[name] for name in a.names}
    # a stops ticking (a crash, or SIGSTOP): its leases expire and b takes them
    await tick_until(lambda: b.names == set(NAMES), b)
    taken = {lease.name: lease for lease in b.acquired if lease.name in a_had}
    assert set(taken) == set(a_had)
    assert all(taken[name].token == a_had[name].token + 1 for name in a_had)
    # a wakes up: its renewals fail and it drops everything
    await a.tick()
    assert sorted(a.lost) == sorted(a_had)
    assert a.names == set()


async def test_a_failing_on_acquired_releases_the_lease_and_the_loop_goes_on(db: Database) -> None:
    a, b = Replica(db, "a", fail_on="exec:2"), Replica(db, "b")
    await a.tick()
    assert a.names == set(NAMES) - {"exec:2"}
    await b.tick()  # released at once: b takes it with the next token
    assert [(lease.name, lease.token) for lease in b.acquired] == [("exec:2", 2)]


async def test_start_and_stop_run_the_loop(db: Database) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    await a.ownership.start()  # the first round runs before start returns
    assert a.names == set(NAMES)
    await b.ownership.start()
    for _ in range(300):
        if b.names and len(a.names) + len(b.names) == len(NAMES):
            break
        await asyncio.sleep(0.02)
    assert a.names.isdisjoint(b.names) and a.names | b.names == set(NAMES)
    await b.ownership.stop(release=True)
    for _ in range(300):
        if a.names == set(NAMES):
            break
        await asyncio.sleep(0.02)
    assert a.names == set(NAMES)
    await a.ownership.stop(release=False)
    assert a.names == set()


class FlakyStore(LeaseStore):
    """The database drops the connection on the first heartbeat and the first renew."""

    def __init__(self, db: Database, owner: str) -> None:
        super().__init__(db, owner, TTL_MS)
        self.failures = {"heartbeat": 1, "renew": 1}

    def _fail(self, what: str) -> None:
        if self.failures[what]:
            self.failures[what] -= 1
            raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    async def heartbeat(self) -> None:
        self._fail("heartbeat")
        await super().heartbeat()

    async def renew(self, lease: Lease) -> bool:
        self._fail("renew")
        return await super().renew(lease)


async def test_transient_database_errors_are_retried_within_the_round(db: Database) -> None:
    acquired: list[Lease] = []

    async def on_acquired(lease: Lease) -> None:
        acquired.append(lease)

    async def on_lost(name: str) -> None:
        raise AssertionError(f"{name} must not be lost")

    store = FlakyStore(db, "a")
    ownership = Ownership(store, NAMES, on_acquired=on_acquired, on_lost=on_lost)
    await ownership.tick()  # the heartbeat fails once, then succeeds (app/retry.py)
    await ownership.tick()  # the first renew fails once, then succeeds
    assert store.failures == {"heartbeat": 0, "renew": 0}
    assert set(ownership.owned) == set(NAMES) and len(acquired) == len(NAMES)


class CountingStore(LeaseStore):
    def __init__(self, db: Database, owner: str) -> None:
        super().__init__(db, owner, TTL_MS)
        self.heartbeats = 0

    async def heartbeat(self) -> None:
        self.heartbeats += 1
        await super().heartbeat()


async def test_a_long_round_keeps_heartbeating(db: Database) -> None:
    """Taking many partitions (a rebuild each) can outlast a ttl: the replica must not look dead meanwhile (peers
    would end its database sessions), so it heartbeats between them."""
    store = CountingStore(db, "slow")
    ownership = Ownership(store, NAMES, on_acquired=lambda _: asyncio.sleep(0.1), on_lost=_never, interval_ms=150)
    await ownership.tick()  # one round: 7 partitions x 0.1 s = 0.7 s, several intervals
    assert set(ownership.owned) == set(NAMES)
    assert store.heartbeats >= 3
    await ownership.stop(release=True)


async def _never(name: str) -> None:
    raise AssertionError(f"{name} must not be lost")
