"""One market feed for the cluster (app/cluster/feed_leader.py) on this machine's Redis and the test database: two
or three replicas' MarketStates in one process, each with its own simulator, lease store and Redis connections."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import orjson
import pytest
import redis.asyncio as redis

from app.cluster import market_wire as wire
from app.cluster.feed_leader import FeedLeader, build_feed_leader
from app.cluster.leases import LeaseStore
from app.cluster.partitions import FEED_LEASE
from app.config import load_settings
from app.ids import now_ms
from app.market.models import Interval, Trade
from app.market.simulated import SimulatedMarket
from app.market.state import MarketState
from app.market.symbols import sim_profile, simulated_rules
from app.retry import RetryPolicy
from app.services import Services, build_services
from storage.db import Database
from tests.factories import wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TTL_MS = 3000  # the simulator and snapshots share one loop with the lease renewals of both replicas: a loaded
# machine stalls that loop for a good part of a second (CI lost a 1 s lease in the middle of a test)
FAST = RetryPolicy(initial=0.05, maximum=0.2)


class CountingSim(SimulatedMarket):
    steps = 0

    def step(self) -> None:
        self.steps += 1
        super().step()


class Replica:
    def __init__(self, db: Database, owner: str, redis_url: str, prefix: str) -> None:
        self.market = MarketState(SYMBOLS)
        self.sim = CountingSim(self.market, simulated_rules(SYMBOLS), seed=42, ticks_per_second=20)
        self.sim.backfill()
        self.leader = FeedLeader(
            redis_url,
            self.market,
            LeaseStore(db, owner, TTL_MS),
            channel_prefix=prefix,
            simulator=self.sim,
            snapshot_every_s=1.0,
            policy=FAST,
        )


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture
async def replicas(
    db: Database, redis_url: str, channel_prefix: str, redis_admin: redis.Redis
) -> AsyncIterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        await replica.leader.stop()
    await redis_admin.delete(f"{channel_prefix}market:snapshot", f"{channel_prefix}market:recent")


async def explain(replica: Replica) -> str:
    """The lease row and where the replica's ownership loop is, for a failure message."""
    task = replica.leader.ownership._task  # diagnostics only
    where = "no task" if task is None else ("done" if task.done() else repr(task.get_stack(limit=8)))
    holder = await replica.leader.store.holder(FEED_LEASE)
    owned = sorted(replica.leader.ownership.owned)
    return f"feed lease {holder}, owned {owned}, synced {replica.leader.synced.is_set()}, ownership loop at {where}"


def view(market: MarketState) -> object:
    """What pages, the API and the paper venue read of a MarketState."""
    return [
        (
            market.last_price(s),
            [market.candles(s, interval, wire.ALL) for interval in Interval],
            market.depth(s, wire.ALL),
            market.trades(s, wire.ALL),
            market.ticker(s),  # last price, bid/ask and the 24 h statistics
        )
        for s in SYMBOLS
    ]


def seed_price(symbol: str) -> Decimal:
    return Decimal(str(sim_profile(symbol).price))


def near(price: Decimal | None, target: Decimal) -> bool:
    return price is not None and abs(math.log(float(price) / float(target))) < 0.1


async def test_only_the_leader_runs_the_feed_and_every_replica_shows_the_same_market(
    replicas: list[Replica], db: Database, redis_url: str, channel_prefix: str
) -> None:
    a = Replica(db, "a", redis_url, channel_prefix)
    replicas.append(a)
    await a.leader.start()
    assert a.leader.lease is not None and a.leader.lease.token == 1
    await wait_for(lambda: a.sim.steps >= 5, what="the leader's simulator")
    b = Replica(db, "b", redis_url, channel_prefix)  # starts later: from the snapshot, then the stream
    replicas.append(b)
    await b.leader.start()
    assert b.leader.synced.is_set() and b.leader.lease is None
    await wait_for(lambda: b.leader.applied >= 5, what="the follower applies the leader's steps")
    await wait_for(lambda: view(a.market) == view(b.market), what="the same prices, candles, depth and trades")
    assert b.sim.steps == 0
    assert b.market.last_price("BTCUSDT") == a.market.last_price("BTCUSDT")


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful-stop", "dies"])
async def test_when_the_leader_goes_the_other_takes_over_from_the_last_price(
    replicas: list[Replica], db: Database, redis_url: str, channel_prefix: str, graceful: bool
) -> None:
    a = Replica(db, "a", redis_url, channel_prefix)
    replicas.append(a)
    # The leader's market is far from the simulator's seed price (twice it): a new leader that restarted from
    # its own seed would jump back to half the price.
    far = {s: seed_price(s) * 2 for s in SYMBOLS}
    for symbol, price in far.items():
        a.market.apply_trade(Trade(symbol, price, Decimal("0.01"), "BUY", now_ms()))
    await a.leader.start()
    await wait_for(lambda: a.sim.steps >= 3, what="the leader's simulator")
    assert all(near(a.market.last_price(s), far[s]) for s in SYMBOLS)
    b = Replica(db, "b", redis_url, channel_prefix)
    replicas.append(b)
    await b.leader.start()
    await wait_for(lambda: b.leader.applied >= 3, what="the follower applies the leader's steps")
    assert b.sim.steps == 0
    replicas.remove(a)
    await a.leader.stop(release=graceful)  # not graceful: the lease stays until the ttl, as after a crash
    a_steps = a.sim.steps
    try:
        await wait_for(lambda: b.leader.lease is not None, what="the follower takes the feed lease")
    except AssertionError as failed:  # once seen in a loaded CI run, never here: say what the follower was doing
        raise AssertionError(f"{failed}: {await explain(b)}") from None
    assert b.leader.lease is not None and b.leader.lease.token == 2
    await wait_for(lambda: b.sim.steps >= 5, what="the new leader's simulator")
    assert all(near(b.market.last_price(s), far[s]) for s in SYMBOLS)  # continued, not back to the seed
    assert a.sim.steps == a_steps  # the old leader's feed stopped with it


async def test_a_follower_drops_a_deposed_leader_and_rereads_the_snapshot_after_a_gap(
    replicas: list[Replica], db: Database, redis_url: str, channel_prefix: str, redis_admin: redis.Redis
) -> None:
    ghost = LeaseStore(db, "ghost", 60_000)  # the leader, played by hand: token 2 (it took over from token 1)
    first = await ghost.acquire(FEED_LEASE)
    assert first is not None
    await ghost.release(first)
    assert await ghost.acquire(FEED_LEASE) is not None
    source = MarketState(SYMBOLS)
    SimulatedMarket(source, simulated_rules(SYMBOLS), seed=7).backfill()
    key, channel = f"{channel_prefix}market:snapshot", f"{channel_prefix}market"

    async def snapshot(seq: int) -> None:
        await redis_admin.set(key, orjson.dumps({"o": "ghost", "k": 2, "s": seq, "symbols": wire.snapshot_of(source)}))

    async def publish(term: int, seq: int, price: str) -> None:
        trade = Trade("BTCUSDT", Decimal(price), Decimal("0.5"), "BUY", now_ms())
        message = {"o": "ghost", "k": term, "s": seq, "e": [["t", wire.trade_out(trade)]]}
        await redis_admin.publish(channel, orjson.dumps(message))

    await snapshot(5)
    c = Replica(db, "c", redis_url, channel_prefix)
    replicas.append(c)
    await c.leader.start()
    assert c.leader.lease is None and c.leader.synced.is_set()
    assert view(c.market) == view(source)
    await publish(2, 6, "50001")
    await publish(1, 100, "1")  # the deposed leader (token 1), resumed after a pause: dropped
    await publish(2, 6, "2")  # already applied: dropped
    await publish(2, 7, "50002")
    await wait_for(lambda: c.leader.applied == 2, what="two messages applied")
    assert [t.price for t in c.market.trades("BTCUSDT", 2)] == [Decimal("50002"), Decimal("50001")]
    source.apply_trade(Trade("BTCUSDT", Decimal("60000"), Decimal("1"), "SELL", now_ms()))
    await snapshot(20)
    await publish(2, 9, "3")  # message 8 was lost: read the snapshot (message 20), so 9 is already in it
    await publish(2, 21, "60001")
    await wait_for(lambda: c.leader.applied == 3, what="the message after the snapshot")
    assert [t.price for t in c.market.trades("BTCUSDT", 2)] == [Decimal("60001"), Decimal("60000")]
    assert c.sim.steps == 0


def test_built_only_in_cluster_mode(db: Database, redis_url: str) -> None:
    market = MarketState(SYMBOLS)
    assert build_feed_leader(load_settings(cluster=False), market, None, None, db) is None
    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/tradewind"
    settings = load_settings(cluster=True, redis_url=redis_url, database_url=pg, lease_ttl_seconds=2.5)
    leader = build_feed_leader(settings, market, None, None, db, owner="replica-1")
    assert leader is not None
    assert (leader.store.owner, leader.store.ttl_ms, leader.channel) == ("replica-1", 2500, "tradewind:market")


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="CLUSTER needs PostgreSQL")
async def test_two_service_containers_in_cluster_mode_share_one_feed(
    database_url: str, redis_url: str, channel_prefix: str, redis_admin: redis.Redis
) -> None:
    def replica() -> Services:
        settings = load_settings(
            cluster=True, redis_url=redis_url, redis_channel_prefix=channel_prefix, lease_ttl_seconds=1.0
        )
        return build_services(settings, migrate=False)

    a, b = replica(), replica()
    try:
        leaders = [a.feed_leader, b.feed_leader]
        assert leaders[0] is not None and leaders[1] is not None
        for leader in leaders:
            await leader.start()  # what Services.start does in cluster mode, instead of the local simulator
        assert leaders[0].lease is not None and leaders[1].lease is None
        follower = leaders[1]
        await wait_for(lambda: follower.applied >= 3, what="the follower applies the leader's steps")
        await wait_for(lambda: view(a.market) == view(b.market), what="both containers show the same market")
    finally:
        await a.stop()
        await b.stop()
        await redis_admin.delete(f"{channel_prefix}market:snapshot", f"{channel_prefix}market:recent")
