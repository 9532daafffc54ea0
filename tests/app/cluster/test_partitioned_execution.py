"""CLUSTER mode in one test process: two service containers (replicas A and B) on the same PostgreSQL database and
Redis, each with its own uvicorn. Accounts are partitioned between them by leases (app/cluster/): every order
executes once, on its partition's owner, whichever replica took the request; a graceful stop hands partitions
over at once; a replica whose lease was taken commits nothing for that partition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy import text

from app.cluster.partitions import partition_lease_name
from app.config import load_settings
from app.services import Services, build_services
from storage.repositories import accounts as account_repo
from storage.repositories import events
from tests.app.api.test_ws_sessions import serve
from tests.app.test_replicas import api_app
from tests.conftest import BACKEND
from tests.factories import place, register, wait_for, wait_for_status

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="CLUSTER mode runs on PostgreSQL (DESIGN: scale-out)")

PARTITIONS = 4


def replica(redis_url: str, channel_prefix: str) -> Services:
    settings = load_settings(
        cluster=True,
        redis_url=redis_url,
        redis_channel_prefix=channel_prefix,
        cluster_partitions=PARTITIONS,
        lease_ttl_seconds=1.0,
    )
    return build_services(settings, migrate=False)


def held(services: Services) -> set[int]:
    assert services.cluster is not None
    return set(services.cluster.scope.leases)


@pytest.fixture
async def cluster(database_url: str, redis_url: str, channel_prefix: str) -> AsyncIterator[list[Services]]:
    replicas = [replica(redis_url, channel_prefix), replica(redis_url, channel_prefix)]
    try:
        for services in replicas:
            await services.start()
        await wait_for(
            lambda: (
                len(held(replicas[0]) | held(replicas[1])) == PARTITIONS and held(replicas[0]) and held(replicas[1])
            ),
            what="the partitions shared out",
        )
        yield replicas
    finally:
        for services in replicas:
            await services.stop()


@pytest.fixture
async def clients(cluster: list[Services]) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = []
        for services in cluster:
            address = await stack.enter_async_context(serve(api_app(services), services.settings))
            clients.append(await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://{address}")))
        yield clients


async def account_of(services: Services, user_id: str) -> str:
    account = await services.db.read(lambda s: account_repo.paper_account(s, user_id))
    assert account is not None
    return account.id


async def test_every_order_executes_once_on_its_partitions_owner(
    cluster: list[Services], clients: list[httpx.AsyncClient]
) -> None:
    a, b = cluster
    assert held(a).isdisjoint(held(b))
    users = [await register(clients[i % 2]) for i in range(8)]
    placed: list[tuple[httpx.AsyncClient, dict[str, str], str]] = []
    for round_ in range(3):
        for i, (_, headers) in enumerate(users):
            client = clients[(i + round_) % 2]  # each user through both replicas
            response = await place(client, headers)
            assert response.status_code == 202, response.text
            placed.append((client, headers, response.json()["id"]))
    for client, headers, order_id in placed:
        order = await wait_for_status(client, headers, order_id, "FILLED", timeout=30)
        assert order["filled_quantity"] == "0.01"
    assert a.cluster is not None and b.cluster is not None
    assert a.cluster.streams.forwarded + b.cluster.streams.forwarded > 0  # some requests landed on a non-owner

    for user_id, _ in users:
        account = await account_of(a, user_id)

        def facts(session: object, account: str = account, user_id: str = user_id) -> tuple[int, int, list[int]]:
            fills = session.execute(  # type: ignore[attr-defined]
                text("SELECT count(*), count(DISTINCT order_id) FROM fills WHERE account_id = :a"), {"a": account}
            ).one()
            seqs = [e.seq for e in events.since(session, user_id, 0, 10_000)]  # type: ignore[arg-type]
            return fills[0], fills[1], seqs

        fills, orders_filled, seqs = await a.db.read(facts)
        assert orders_filled == 3 and fills >= 3
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free per user


async def test_a_graceful_stop_hands_the_partitions_over(
    cluster: list[Services], clients: list[httpx.AsyncClient]
) -> None:
    a, b = cluster
    _, headers = await register(clients[0])
    await b.stop()
    await wait_for(lambda: held(a) == set(range(PARTITIONS)), what="A holding every partition")
    response = await place(clients[0], headers)
    assert response.status_code == 202
    await wait_for_status(clients[0], headers, response.json()["id"], "FILLED", timeout=30)
    cluster.remove(b)  # stopped already


async def test_a_replica_whose_lease_was_taken_commits_nothing_for_it(
    cluster: list[Services], clients: list[httpx.AsyncClient]
) -> None:
    a, b = cluster
    assert a.cluster is not None and b.cluster is not None
    user_id, headers = await register(clients[0])
    account = await account_of(a, user_id)
    partition = a.cluster.scope.partition(account)
    owner = a if partition in held(a) else b
    assert owner.cluster is not None
    # Another replica takes the lease behind the owner's back (as after a pause past the lease's expiry).
    name = partition_lease_name(partition)

    def steal(session: object) -> None:
        session.execute(  # type: ignore[attr-defined]
            text(
                "UPDATE leases SET owner = 'thief', token = token + 1, expires_at_ms = expires_at_ms + 3600000"
                " WHERE name = :n"
            ),
            {"n": name},
        )

    await a.db.write(steal)
    client = clients[0] if owner is a else clients[1]
    response = await place(client, headers)
    assert response.status_code == 202  # intake journals it: durable, whoever executes it
    order_id = response.json()["id"]
    await wait_for(lambda: partition not in held(owner), what="the owner giving the partition up")
    await owner.engine.drain()
    order = (await client.get(f"/api/trading/orders/{order_id}", headers=headers)).json()
    assert order["status"] == "PENDING"  # the fence refused the owner's batch: nothing executed, nothing lost
    assert order["filled_quantity"] == "0"

    # The thief's lease ends: a replica takes the partition over and runs the order, once.
    await a.db.write(
        lambda session: session.execute(text("UPDATE leases SET expires_at_ms = 0 WHERE name = :n"), {"n": name})
    )
    order = await wait_for_status(client, headers, order_id, "FILLED", timeout=30)
    assert order["filled_quantity"] == "0.01"


async def test_ownership_rounds_go_on_while_every_writer_thread_waits_on_a_lock(
    cluster: list[Services], clients: list[httpx.AsyncClient]
) -> None:
    """A frozen replica's locks can hold every thread of the batches' pool; the leases have their own, so this
    replica still heartbeats, renews and ends the frozen replica's sessions."""
    a = cluster[0]
    assert a.cluster is not None
    user_id, _ = await register(clients[0])
    blocker = a.db.engine.connect()
    try:
        blocker.execute(text("SELECT 1 FROM users WHERE id = :u FOR UPDATE"), {"u": user_id})
        stuck = [  # more writes than the pool has threads, all waiting on the row lock
            asyncio.create_task(
                a.db.write(
                    lambda s: s.execute(text("UPDATE users SET last_seq = last_seq WHERE id = :u"), {"u": user_id})
                )
            )
            for _ in range(12)
        ]
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        for _ in range(200):  # until the writer pool's 8 threads all wait (the reader pool answers this)
            if await a.db.read(lambda s: s.execute(waiting).scalar_one()) >= 8:
                break
            await asyncio.sleep(0.05)
        assert await a.db.read(lambda s: s.execute(waiting).scalar_one()) >= 8
        seen = text("SELECT seen_at_ms FROM cluster_members WHERE owner = :o")
        before = await a.db.read(lambda s: s.execute(seen, {"o": a.cluster.replica_id}).scalar_one())
        partitions = held(a)
        await asyncio.sleep(1.5)  # several rounds (ttl 1 s, a round every 1/3 s): each would queue behind the writes
        after = await a.db.read(lambda s: s.execute(seen, {"o": a.cluster.replica_id}).scalar_one())
        assert after > before and held(a) == partitions  # still heartbeating and renewing
        assert not any(task.done() for task in stuck)
    finally:
        blocker.rollback()
        blocker.close()
    await asyncio.gather(*stuck)
