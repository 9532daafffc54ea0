"""Leases with fencing tokens, on the test database (SQLite or PostgreSQL, TW_TEST_DB)."""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.cluster.leases import Lease, LeaseLost, LeaseStore, fence
from app.cluster.partitions import FEED_LEASE, partition_lease_name, partition_of, partition_of_lease
from storage.db import Database
from storage.repositories import leases as rows

TTL_MS = 1000  # long enough that a loaded machine does not let a lease lapse between two steps of a test


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


async def wait_expired(db: Database, name: str) -> None:
    """Poll the database's clock until the lease has expired (no fixed sleep)."""
    c = rows.LEASES.c

    def expired(session: Session) -> bool:
        query = select(c.expires_at_ms <= rows.db_now(session)).where(c.name == name)
        return bool(session.execute(query).scalar_one())

    for _ in range(500):
        if await db.read(expired):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never expired")


def test_partitions_are_stable() -> None:
    assert partition_of("01JAB", 64) == partition_of("01JAB", 64)
    assert partition_of("01JAB", 64) == zlib.crc32(b"01JAB") % 64
    assert {partition_of(f"acc-{i}", 8) for i in range(200)} == set(range(8))
    assert partition_lease_name(7) == "exec:7"
    assert partition_of_lease(partition_lease_name(7)) == 7
    assert partition_of_lease(FEED_LEASE) is None
    assert FEED_LEASE == "feed"


async def test_first_acquire_creates_token_1_and_the_holder_renews(db: Database) -> None:
    a, b = LeaseStore(db, "a", TTL_MS), LeaseStore(db, "b", TTL_MS)
    lease = await a.acquire("exec:0")
    assert lease == Lease("exec:0", "a", 1)
    assert await b.acquire("exec:0") is None  # live and someone else's
    assert await a.acquire("exec:0") == lease  # ours and live: renewed, same token
    assert await a.renew(lease)
    assert await a.holder("exec:0") == lease


async def test_two_stores_racing_for_one_name_only_one_wins(db: Database) -> None:
    a, b = LeaseStore(db, "a", 10_000), LeaseStore(db, "b", 10_000)
    for i in range(20):
        won = await asyncio.gather(a.acquire(f"race:{i}"), b.acquire(f"race:{i}"))
        winners = [lease for lease in won if lease is not None]
        assert len(winners) == 1, won
        assert winners[0].token == 1


async def test_expiry_then_takeover_bumps_the_token_and_fences_the_old_holder(db: Database) -> None:
    a, b = LeaseStore(db, "a", TTL_MS), LeaseStore(db, "b", TTL_MS)
    old = await a.acquire("exec:1")
    assert old is not None
    await db.write(lambda s: fence(s, [old]))  # still ours: passes
    await wait_expired(db, "exec:1")
    await db.write(lambda s: fence(s, [old]))  # expired but nobody took it: still safe to write under
    new = await b.acquire("exec:1")
    assert new == Lease("exec:1", "b", 2)
    assert not await a.renew(old)  # the old holder learns it lost the lease
    with pytest.raises(LeaseLost) as lost:
        await db.write(lambda s: fence(s, [old]))
    assert lost.value.names == ["exec:1"]
    await db.write(lambda s: fence(s, [new]))
    # The old holder's release does nothing: the lease is not its own any more.
    await a.release(old)
    assert await a.acquire("exec:1") is None


async def test_fence_names_every_lost_lease_and_a_missing_row_counts_as_lost(db: Database) -> None:
    a = LeaseStore(db, "a", 10_000)
    kept = await a.acquire("exec:2")
    assert kept is not None
    stale = Lease("exec:2", "a", kept.token + 1)
    never = Lease("exec:3", "a", 1)
    with pytest.raises(LeaseLost) as lost:
        await db.write(lambda s: fence(s, [kept, stale, never]))
    assert lost.value.names == ["exec:2", "exec:3"]
    await db.write(lambda s: fence(s, []))  # nothing to fence: nothing read


async def test_release_hands_over_at_once_with_the_next_token(db: Database) -> None:
    a, b = LeaseStore(db, "a", 10_000), LeaseStore(db, "b", 10_000)
    lease = await a.acquire("feed")
    assert lease is not None
    assert await b.takeable(["feed", "exec:9"]) == ["exec:9"]
    await a.release(lease)
    assert await b.takeable(["feed", "exec:9"]) == ["feed", "exec:9"]
    assert await b.acquire("feed") == Lease("feed", "b", 2)
    assert await a.acquire("feed") is None


async def test_heartbeats_count_live_members(db: Database) -> None:
    a, b = LeaseStore(db, "a", TTL_MS), LeaseStore(db, "b", TTL_MS)
    assert await a.live_members() == 1  # nobody has beaten yet: at least this replica
    await a.heartbeat()
    await b.heartbeat()
    assert await a.live_members() == 2
    await b.leave()
    assert await a.live_members() == 1
    await b.heartbeat()
    c = rows.MEMBERS.c

    def b_stale(session: Session) -> bool:
        seen = select(c.seen_at_ms).where(c.owner == "b").scalar_subquery()
        return bool(session.execute(select(seen <= rows.db_now(session) - TTL_MS)).scalar_one())

    for _ in range(500):
        if await db.read(b_stale):
            break
        await asyncio.sleep(0.02)
    await a.heartbeat()
    assert await a.live_members() == 1
    assert await a.end_sessions_of_dead_members() == 0  # b is gone but left no session in a transaction


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="FOR SHARE is PostgreSQL's")
async def test_no_takeover_while_a_fenced_transaction_is_open_and_it_commits_first(db: Database) -> None:
    a, b = LeaseStore(db, "a", TTL_MS), LeaseStore(db, "b", TTL_MS)
    old = await a.acquire("exec:4")
    assert old is not None
    await wait_expired(db, "exec:4")
    # The old holder's batch: fenced (rows locked FOR SHARE), its write not yet committed.
    with Session(db.engine) as batch:
        fence(batch, [old])
        batch.execute(text("INSERT INTO cluster_members (owner, seen_at_ms) VALUES ('batch-of-a', 1)"))
        started = time.monotonic()
        assert await b.acquire("exec:4") is None  # its holder is writing under it: not free, and no long wait
        assert time.monotonic() - started < 5
        batch.commit()
    assert await b.acquire("exec:4") == Lease("exec:4", "b", 2)
    assert await db.read(lambda s: s.execute(text("SELECT count(*) FROM cluster_members")).scalar_one()) == 1
    with pytest.raises(LeaseLost):  # and the next batch of the old holder is refused
        await db.write(lambda s: fence(s, [old]))


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="sessions and row locks are PostgreSQL's")
async def test_a_frozen_replicas_open_transaction_is_ended_once_its_heartbeat_stops(
    db: Database, database_url: str
) -> None:
    frozen_id, live_id = f"frozen-{os.urandom(4).hex()}", f"live-{os.urandom(4).hex()}"
    frozen_db = Database(database_url, application_name=rows.session_name(frozen_id))
    live_db = Database(database_url, application_name=rows.session_name(live_id))
    ttl = 1500  # room for a loaded machine between the steps that must happen within one ttl
    frozen, live, b = LeaseStore(frozen_db, frozen_id, ttl), LeaseStore(live_db, live_id, ttl), LeaseStore(db, "b", ttl)
    try:
        await frozen.heartbeat()
        old = await frozen.acquire("exec:6")
        assert old is not None
        with Session(frozen_db.engine) as batch, Session(live_db.engine) as busy:
            fence(batch, [old])  # frozen mid-batch: the lease row stays locked FOR SHARE
            busy.execute(text("SELECT 1"))  # a live replica's open transaction: not to be touched
            assert await b.end_sessions_of_dead_members() == 0  # the frozen one is still within its ttl
            await wait_expired(db, "exec:6")
            assert await b.acquire("exec:6") is None  # blocked by the frozen transaction
            await live.heartbeat()
            assert await b.end_sessions_of_dead_members() == 1
            lease = None
            for _ in range(100):  # the server ends the session a moment later
                if (lease := await b.acquire("exec:6")) is not None:
                    break
                await asyncio.sleep(0.05)
            assert lease == Lease("exec:6", "b", old.token + 1)
            with pytest.raises(OperationalError):  # what the frozen replica meets when it wakes up
                batch.commit()
            busy.execute(text("SELECT 1"))
            busy.commit()
    finally:
        frozen_db.close()
        live_db.close()


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="FOR SHARE is PostgreSQL's")
async def test_a_fence_that_waits_for_a_takeover_sees_the_new_token(db: Database) -> None:
    a, b = LeaseStore(db, "a", TTL_MS), LeaseStore(db, "b", TTL_MS)
    old = await a.acquire("exec:5")
    assert old is not None
    await wait_expired(db, "exec:5")
    with Session(db.engine) as takeover:  # the takeover's transaction holds the row until it commits
        assert rows.acquire(takeover, "exec:5", "b", TTL_MS) == 2
        batch = asyncio.create_task(db.write(lambda s: fence(s, [old])))
        await _wait_for_a_lock_wait(db)
        assert not batch.done()
        takeover.commit()
    with pytest.raises(LeaseLost):
        await batch
    assert await b.holder("exec:5") == Lease("exec:5", "b", 2)


async def _wait_for_a_lock_wait(db: Database) -> None:
    """Poll pg_stat_activity until a backend of this database waits on a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        if await db.read(lambda s: s.execute(query).scalar_one()) >= 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing ever waited for the lock")


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="sessions are PostgreSQL's")
async def test_a_long_gone_member_is_not_forgotten_while_its_session_holds_a_transaction(
    db: Database, database_url: str
) -> None:
    gone_id = f"gone-{os.urandom(4).hex()}"
    gone_db = Database(database_url, application_name=rows.session_name(gone_id))
    b = LeaseStore(db, "b", TTL_MS)

    def members(session: Session) -> set[str]:
        return set(session.execute(select(rows.MEMBERS.c.owner)).scalars())

    try:
        await LeaseStore(gone_db, gone_id, TTL_MS).heartbeat()
        await db.write(
            lambda s: s.execute(text("UPDATE cluster_members SET seen_at_ms = 0 WHERE owner = :o"), {"o": gone_id})
        )
        with Session(gone_db.engine) as stuck:
            stuck.execute(text("SELECT 1"))  # frozen inside a transaction, for longer than members are kept
            await b.heartbeat()  # forgets members gone for long: not this one, its session must be ended first
            assert gone_id in await db.read(members)
            assert await b.end_sessions_of_dead_members() == 1
            for _ in range(100):  # the server ends the session a moment later; then it is forgotten
                await b.heartbeat()
                if gone_id not in await db.read(members):
                    break
                await asyncio.sleep(0.05)
            assert gone_id not in await db.read(members)
            with pytest.raises(OperationalError):  # its session was ended
                stuck.commit()
    finally:
        gone_db.close()
