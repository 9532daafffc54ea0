"""One market-data feed for the whole cluster (CLUSTER=true; docs/scaling.md).

The replica holding the lease `feed` runs the feed (the simulator, or the Binance testnet streams) into its
MarketState and publishes every depth snapshot and trade, in order, on the Redis channel
`<REDIS_CHANNEL_PREFIX>market`, one message per event-loop turn (a simulator step: every symbol's depth and
trades); the newest RECENT_KEPT messages are also kept in the list `<prefix>market:recent`. It stores a snapshot
of its whole MarketState (candles of every interval, depth, recent trades, last price) under
`<prefix>market:snapshot` every few seconds and whenever it starts or stops leading. Every other replica runs no
feed: when it subscribes it loads the snapshot and the recent messages after it, then applies what it hears to
its MarketState, so its pages, API and paper engine see the same trades as the leader's.

Messages carry the leader's fencing token (`k`) and a sequence number (`s`) that restarts at each new token. A
follower applies a message only if it is newer than what it has: a message of an older token (a deposed leader
that was paused past its lease) is dropped, and a gap (a lost message or subscription) is filled from the recent
list, or from the snapshot when the list no longer reaches back. When the leader dies, its lease expires after
the ttl and a follower takes it: its MarketState already holds everything the old leader published, and the
simulator continues from those last prices (`SimulatedMarket.resume`), not from its seed. A graceful stop
publishes what is pending, writes a final snapshot and hands the lease over at once.

Market data is not the durable record (orders and fills are, in the database): Redis holds only the recent past.
Redis connections reconnect through app/retry.py; a leader that cannot reach Redis keeps running its feed locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as redis

from app.cluster import market_wire as wire
from app.cluster.leases import Lease, LeaseStore
from app.cluster.ownership import Ownership
from app.cluster.partitions import FEED_LEASE
from app.config import Settings
from app.ids import new_id
from app.market.ccxt_feed import CcxtMarketFeed
from app.market.models import Depth, Trade
from app.market.simulated import SimulatedMarket
from app.market.state import MarketState
from app.redis_link import next_batch, redis_client
from app.retry import RECONNECT, RetryPolicy, reconnect_forever, retry
from app.tasks import cancel_and_wait
from storage.db import Database

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_SECONDS = 5.0
OUTBOX_SIZE = 1000  # messages (one per feed step) waiting for Redis; beyond it they are dropped
STARTUP_WAIT_SECONDS = 5.0  # start() waits this long for the subscription and the snapshot, then goes on
RECENT_KEPT = 200  # the newest messages also kept in a Redis list (25 s at 8 steps/s): a follower's catch-up
BATCH = 100  # messages per round trip to Redis
CONNECT_TIMEOUT_SECONDS = 5.0
REDIS_CALL = RetryPolicy(initial=0.2, maximum=2.0, max_attempts=3)
REDIS_ERRORS = (redis.RedisError, OSError)


class FeedLeader:
    """Runs the feed on the lease holder and mirrors it everywhere else (see the module docstring)."""

    def __init__(
        self,
        url: str,
        market: MarketState,
        store: LeaseStore,
        *,
        channel_prefix: str = "tradewind:",
        simulator: SimulatedMarket | None = None,
        feed: CcxtMarketFeed | None = None,
        snapshot_every_s: float = SNAPSHOT_EVERY_SECONDS,
        policy: RetryPolicy = RECONNECT,
        interval_ms: int | None = None,
    ) -> None:
        self.url = url
        self.market = market
        self.store = store
        self.origin = store.owner
        self.channel = f"{channel_prefix}market"
        self.snapshot_key = f"{channel_prefix}market:snapshot"
        self.recent_key = f"{channel_prefix}market:recent"
        self.simulator = simulator
        self.feed = feed
        self.snapshot_every_s = snapshot_every_s
        self.policy = policy
        # The feed is one lease, not a share of the work: no heartbeat (the partitions' loop counts replicas).
        self.ownership = Ownership(
            store,
            [FEED_LEASE],
            on_acquired=self._lead,
            on_lost=self._lost,
            on_releasing=self._step_down,
            interval_ms=interval_ms,
            heartbeat=False,
        )
        self.lease: Lease | None = None  # set while this replica runs the feed
        self.synced = asyncio.Event()  # MarketState holds the cluster's data (a snapshot was loaded, or we lead)
        self.subscribed = asyncio.Event()  # the subscription is live and tried to load the snapshot
        self.applied = 0  # messages applied from the leader
        self.dropped = 0  # messages lost to a full outbox
        self._client: redis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._leading: list[asyncio.Task[None]] = []  # the feed and the snapshot loop, while leading
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self._unsent: list[bytes] = []
        self._pending: list[wire.Wire] = []
        self._flush_scheduled = False
        self._seq = 0  # leading: the last sequence number given
        self._last_depth: dict[str, Depth] = {}
        self._term = 0  # the newest leader token heard of (or ours)
        self._seen = 0  # following: the last sequence number applied of that term
        market.subscribe_trades(self._on_trade)
        market.subscribe(self._on_symbol)

    # ---- life cycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, load the snapshot (waiting at most STARTUP_WAIT_SECONDS for Redis), then take part in the
        feed lease. The Binance feed loads its symbol rules and history on every replica (order intake needs the
        rules); only the leader runs its streams."""
        if self.feed is not None:
            await self.feed.load()
        self._client = redis_client(self.url, f"tradewind-feed-{self.origin}")
        self._tasks = [
            asyncio.create_task(self._run(self._subscribe, "subscription"), name="feed-subscribe"),
            asyncio.create_task(self._run(self._drain, "publishing"), name="feed-publish"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STARTUP_WAIT_SECONDS):
                await self.subscribed.wait()
        await self.ownership.start()

    async def stop(self, *, release: bool = True) -> None:
        """Hand the feed over (final snapshot, lease released), then disconnect. `release=False` leaves the lease
        to expire after the ttl, as a crash would (tests)."""
        await self.ownership.stop(release=release)
        await self._stop_feed()
        self.lease = None
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- the lease's callbacks --------------------------------------------------------------------------------

    async def _lead(self, lease: Lease) -> None:
        if not self.synced.is_set():  # not following (a cluster's first start): the last published data, if any
            try:
                await self._resync()
            except REDIS_ERRORS as exc:
                log.warning("market feed: no snapshot to start from (%s)", type(exc).__name__)
        self.lease = lease
        self._term, self._seq = max(self._term, lease.token), 0
        self._last_depth = {s: d for s in self.market.symbols if (d := self.market.depth(s, wire.ALL)) is not None}
        self.synced.set()
        await self._write_snapshot()  # a replica that starts now begins from this
        if self.simulator is not None:
            self.simulator.resume()  # from the last published prices, not this process's seed
            self._leading.append(asyncio.create_task(self.simulator.run(), name="simulated-market"))
        elif self.feed is not None:
            self._leading.append(asyncio.create_task(self.feed.run(), name="binance-market-feed"))
        self._leading.append(asyncio.create_task(self._snapshot_loop(), name="feed-snapshots"))
        log.info("market feed: this replica (%s) leads with token %d", self.origin, lease.token)

    async def _lost(self, name: str) -> None:
        """Another replica took the lease (we stalled past it): stop at once; what we published since is not the
        cluster's data, so the next snapshot replaces it."""
        await self._stop_feed()
        self.lease = None
        self._pending.clear()
        self.synced.clear()
        log.warning("market feed: replica %s lost the feed lease; following again", self.origin)

    async def _step_down(self, name: str) -> None:
        """Graceful: stop the feed, publish what is pending and a final snapshot, then the lease is released."""
        await self._stop_feed()
        await self._write_snapshot()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await self._outbox.join()
        self.lease = None
        log.info("market feed: replica %s hands the feed over", self.origin)

    async def _stop_feed(self) -> None:
        tasks, self._leading = self._leading, []
        await cancel_and_wait(*tasks)

    # ---- leading: record what the feed applies, publish it once per loop turn ------------------------------

    def _on_trade(self, trade: Trade) -> None:
        if self.lease is not None:
            self._pending.append(["t", wire.trade_out(trade)])
            self._schedule()

    def _on_symbol(self, symbol: str) -> None:
        if self.lease is None:
            return
        depth = self.market.depth(symbol, wire.ALL)
        if depth is not None and depth is not self._last_depth.get(symbol):  # a trade also reports its symbol
            self._last_depth[symbol] = depth
            self._pending.append(["d", wire.depth_out(depth)])
            self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self.lease is None:
            self._pending.clear()
            return
        self._seq += 1
        message = orjson.dumps({"o": self.origin, "k": self.lease.token, "s": self._seq, "e": self._pending})
        self._pending = []
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:  # followers see the gap and re-read the snapshot
            if not self.dropped:
                log.warning("market feed outbox full (%d): dropping messages until Redis keeps up", OUTBOX_SIZE)
            self.dropped += 1

    async def _write_snapshot(self) -> None:
        """Publish what is pending, then store the whole MarketState as of that sequence number."""
        if self.lease is None or self._client is None:
            return
        self._flush()
        data = orjson.dumps(
            {"o": self.origin, "k": self.lease.token, "s": self._seq, "symbols": wire.snapshot_of(self.market)}
        )
        client = self._client
        try:
            await retry(lambda: client.set(self.snapshot_key, data), policy=REDIS_CALL, retry_on=REDIS_ERRORS)
        except REDIS_ERRORS as exc:
            log.warning("market feed: snapshot not stored (%s); tried again later", type(exc).__name__)

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_every_s)
            await self._write_snapshot()

    # ---- following --------------------------------------------------------------------------------------------

    async def _receive(self, raw: bytes) -> None:
        message = orjson.loads(raw)
        if message["o"] == self.origin or self.lease is not None:
            return  # our own, or a deposed leader's while we lead
        term, seq = int(message["k"]), int(message["s"])
        if self._stale(term, seq):
            return
        follows = (term == self._term and seq == self._seen + 1) or (term > self._term and seq == 1)
        if not (self.synced.is_set() and follows):  # starting, or messages were missed: catch up first
            await self._resync(upto=(term, seq))
        self._apply(message)

    def _apply(self, message: dict[str, Any]) -> None:
        term, seq = int(message["k"]), int(message["s"])
        if self.lease is not None or self._stale(term, seq):
            return
        self._term, self._seen = term, seq
        for kind, payload in message["e"]:
            if kind == "t":
                self.market.apply_trade(wire.trade_in(payload))
            elif kind == "d":
                self.market.apply_depth(wire.depth_in(payload))
        self.applied += 1

    def _stale(self, term: int, seq: int) -> bool:
        """Older than what we have: a deposed leader's token, or already applied (or in the snapshot)."""
        return term < self._term or (term == self._term and seq <= self._seen)

    async def _resync(self, upto: tuple[int, int] | None = None) -> None:
        """Catch up from Redis (one transaction reads both): the snapshot, if we have nothing yet or the recent
        messages cannot fill our gap, then the recent messages newer than what we have (and older than `upto`,
        the live message being handled)."""
        assert self._client is not None
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self.snapshot_key)
            pipe.lrange(self.recent_key, 0, -1)
            raw_snapshot, raw_recent = await pipe.execute()
        if self.lease is not None:
            return  # we became the leader meanwhile: our state is the truth
        recent = [orjson.loads(raw) for raw in raw_recent]
        if raw_snapshot is not None and (not self.synced.is_set() or not self._fills_gap(recent)):
            snapshot: dict[str, Any] = orjson.loads(raw_snapshot)
            term, seq = int(snapshot["k"]), int(snapshot["s"])
            if not self._stale(term, seq):
                wire.restore(self.market, snapshot["symbols"])
                self._term, self._seen = term, seq
                log.info("market feed: loaded the snapshot of token %d, message %d", term, seq)
        for message in recent:
            if upto is None or (int(message["k"]), int(message["s"])) < upto:
                self._apply(message)
        self.synced.set()

    def _fills_gap(self, recent: list[dict[str, Any]]) -> bool:
        """The recent messages hold the one we need next."""
        return any(
            (m["k"] == self._term and m["s"] == self._seen + 1) or (m["k"] > self._term and m["s"] == 1) for m in recent
        )

    # ---- the two Redis connections ------------------------------------------------------------------------------

    async def _run(self, session: Callable[[Callable[[], None]], Any], what: str) -> None:
        def failed(error: Exception | None, delay: float) -> None:
            reason = type(error).__name__ if error is not None else "connection closed"
            log.warning("market feed %s lost or unreachable (%s); retry in %.1fs", what, reason, delay)

        await reconnect_forever(session, policy=self.policy, on_failure=failed)

    async def _subscribe(self, connected: Callable[[], None]) -> None:
        assert self._client is not None
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    connected()
                    if self.lease is None:  # catch up with what was published while we were not listening
                        self.synced.clear()
                        await self._resync()
                    self.subscribed.set()
                elif message["type"] == "message":
                    try:
                        await self._receive(message["data"])
                    except REDIS_ERRORS:
                        raise
                    except Exception:  # a malformed message must not end the subscription
                        log.exception("market feed: could not apply a message")
        finally:
            self.subscribed.clear()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _drain(self, connected: Callable[[], None]) -> None:
        """Each message goes to the recent list, then to the channel (one transaction: a follower that hears it
        finds every earlier one in the list)."""
        assert self._client is not None
        await self._client.ping()
        connected()
        while True:
            self._unsent = await next_batch(self._outbox, self._unsent, BATCH)
            async with self._client.pipeline(transaction=True) as pipe:
                for message in self._unsent:
                    pipe.rpush(self.recent_key, message)
                    pipe.publish(self.channel, message)
                pipe.ltrim(self.recent_key, -RECENT_KEPT, -1)
                await pipe.execute()
            for _ in self._unsent:
                self._outbox.task_done()
            self._unsent = []


def build_feed_leader(
    settings: Settings,
    market: MarketState,
    simulator: SimulatedMarket | None,
    feed: CcxtMarketFeed | None,
    db: Database,
    *,
    owner: str | None = None,
) -> FeedLeader | None:
    """The cluster's feed leader (None unless CLUSTER=true). `owner`: this replica's id in the lease table
    (the same one its partition leases use; a new id if not given)."""
    if not settings.cluster:
        return None
    store = LeaseStore(db, owner or new_id(), ttl_ms=round(settings.lease_ttl_seconds * 1000))
    return FeedLeader(
        settings.redis_url,
        market,
        store,
        channel_prefix=settings.redis_channel_prefix,
        simulator=simulator,
        feed=feed,
    )
