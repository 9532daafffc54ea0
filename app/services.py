"""The service container: built once from settings by main.py (or by a test), started and stopped with the app."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from app.accounts import AccountService
from app.activity import ActivityLog
from app.alerts import AlertService
from app.api_keys import ApiKeyService
from app.auth import AuthService
from app.cluster.execution import ClusterExecution
from app.cluster.feed_leader import FeedLeader, build_feed_leader
from app.config import Settings, decode_key
from app.crypto import KeyBox
from app.domain import SymbolRules, Venue
from app.equity import EquityRecorder
from app.events import EventBus, UserEvent
from app.execution.core import ExecutionCore
from app.execution.exchange import ExchangeExecutor
from app.execution.paper_engine import PaperExecutor
from app.execution.recorder import Recorder
from app.fanout import RedisFanout
from app.ids import new_id, now_ms
from app.jobs import Jobs
from app.market.ccxt_feed import CcxtMarketFeed
from app.market.simulated import SimulatedMarket
from app.market.state import MarketState
from app.market.symbols import simulated_rules
from app.open_orders import OpenOrderCounts
from app.orders import OrderService
from app.portfolio_history import PortfolioHistory
from app.portfolio_service import PortfolioService
from app.position_closer import PositionCloser
from app.retry import RetryPolicy
from app.sealed_keys import reseal_accounts
from app.statements import StatementService
from app.tasks import cancel_and_wait
from app.trading_state import TradingStates
from app.trading_state_service import TradingStateService
from app.venues.base import ExternalVenue
from app.venues.binance_testnet import BinanceTestnetVenue
from app.venues.directory import VenueDirectory, VenueFactory
from app.venues.paper import PaperVenue
from app.webhooks.delivery import DeliveryOptions, WebhookDispatcher
from app.webhooks.guard import HostGuard
from app.webhooks.service import WebhookService
from storage.db import Database
from storage.migrate import upgrade_to_head
from storage.repositories.leases import session_name

log = logging.getLogger(__name__)

STALE_AFTER_MS = 10_000


class PricePublisher:
    """Turns MarketState changes into at most one PRICE_UPDATE per symbol per event-loop turn (a feed step
    applies several trades and a depth snapshot; subscribers need only the result)."""

    def __init__(self, state: MarketState, bus: EventBus) -> None:
        self.state = state
        self.bus = bus
        self._dirty: set[str] = set()
        self._scheduled = False

    def on_change(self, symbol: str) -> None:
        self._dirty.add(symbol)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (synchronous tests): publish at once
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        for symbol in sorted(dirty):
            ticker = self.state.ticker(symbol)
            if ticker is not None:
                self.bus.publish_price(ticker)


@dataclass
class Services:
    settings: Settings
    db: Database
    keybox: KeyBox
    bus: EventBus
    market: MarketState
    rules: Mapping[str, SymbolRules]
    venues: VenueDirectory
    auth: AuthService
    accounts: AccountService
    engine: ExecutionCore
    orders: OrderService
    portfolio: PortfolioService
    jobs: Jobs
    alerts: AlertService
    activity: ActivityLog
    api_keys: ApiKeyService
    trading: TradingStateService
    closer: PositionCloser
    statements: StatementService
    equity: EquityRecorder
    history: PortfolioHistory
    webhooks: WebhookService
    simulator: SimulatedMarket | None = None
    feed: CcxtMarketFeed | None = None
    fanout: RedisFanout | None = None  # REDIS_URL: the other replicas (app/fanout.py)
    cluster: ClusterExecution | None = None  # CLUSTER: this replica's share of the partitions (app/cluster/)
    feed_leader: FeedLeader | None = None  # CLUSTER: runs the feed on one replica, mirrors it on the others
    # CLUSTER: the leases' own connections and threads, so heartbeats and renewals never queue behind batches
    # that wait on a frozen replica's locks (ending that replica's sessions is the ownership loop's job).
    lease_db: Database | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    async def start(self) -> None:
        """Start background work: the market feed and the execution engine (after its recovery).

        Stored exchange keys are re-sealed first (old ENCRYPTION_KEY or legacy scheme), before any venue opens them.
        """
        await reseal_accounts(self.db, self.keybox)
        if self.fanout is not None:
            await self.fanout.start()  # connects in the background: a Redis that is away does not hold start-up
        if self.feed_leader is not None and self.settings.market_feed_enabled:
            await self.feed_leader.start()  # instead of the local feed (it loads the Binance rules too)
        elif self.feed is not None and self.settings.market_feed_enabled:
            await self.feed.start()  # fills `rules` in place first: the engine's recovery copies them
        await self.engine.start()
        if self.cluster is not None:
            await self.cluster.start()  # takes its share of the partitions in the background
        self.jobs.start()
        await self.alerts.start()
        await self.webhooks.start()
        if self.simulator is not None and self.settings.market_feed_enabled and self.feed_leader is None:
            self._tasks.append(asyncio.create_task(self.simulator.run(), name="simulated-market"))
        freeze_startup_heap()

    async def stop(self) -> None:
        await self.webhooks.stop()
        await self.alerts.stop()
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        self.jobs.stop()
        if self.feed_leader is not None:
            await self.feed_leader.stop()
        if self.feed is not None:
            await self.feed.close()
        if self.cluster is not None:
            await self.cluster.stop()  # hands its partitions over at once
        await self.engine.stop()
        if self.fanout is not None:
            await self.fanout.stop()
        await self.api_keys.close()
        await self.activity.drain()
        await self.db.aclose()
        if self.lease_db is not None:
            self.lease_db.close()

    def market_data_status(self) -> str:
        """/health's `market_data`: "stale" when no tick arrived for STALE_AFTER_MS (on MarketState's clock)."""
        return "stale" if self.market.is_stale(STALE_AFTER_MS) else "ok"


_heap_frozen = False
YOUNG_GC_THRESHOLD = 20_000  # net allocations between young collections (CPython's default is 700)


def freeze_startup_heap() -> None:
    """Once per process: move every object alive after start-up (imports, start-up history, rules) to the
    permanent generation, so full garbage collections stop scanning them, and collect the young generation less
    often.

    Unfrozen, each full collection walked ~300k objects and paused the event loop for ~200 ms, which set the p99 of
    price fan-out (bench/ws_fanout.py, docs/market-data.md). Only once: frozen objects that later become cyclic
    garbage are never collected, so freezing again per restart of the services (as tests do) would leak.

    Thresholds: with CPython's default (a young collection every 700 net allocations, the middle generation every
    10 of those), the short-lived objects of every UI push (200 pages x 4 Hz) were caught alive and promoted, so
    collections of the open pages' whole heap ran every 1-3 s and paused the loop for 0.2-0.9 s (bench/ui_pages.py:
    p99 lag 1.2 s). At 20,000 they mostly die first; a young collection pauses ~10 ms, and with the middle
    generation every 100 of those, the older ones become rare (p99 ~0.3 s, a third less CPU; docs/ui.md).
    """
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 100, 10)


def binance_factory(settings: Settings) -> VenueFactory:
    """Builds a Binance Spot Testnet venue client from an account's keys, pointed at the configured URLs."""

    def make(api_key: str, api_secret: str) -> ExternalVenue:
        return BinanceTestnetVenue(
            api_key,
            api_secret,
            rest_url=settings.binance_testnet_url,
            stream_url=settings.binance_testnet_stream_url,
            ws_api_url=settings.binance_testnet_ws_api_url,
        )

    return make


def build_services(settings: Settings, *, migrate: bool = True, market_clock: Callable[[], int] = now_ms) -> Services:
    """Wire every service from settings. Applies migrations first, so the schema is current before any query.

    `market_clock` is MarketState's clock (it stamps updates for /health's staleness); tests inject their own.
    """
    # A cluster replica's id names its database sessions: the others end them if it freezes inside a transaction.
    replica_id = new_id() if settings.cluster else None
    db = Database(settings.database_url, application_name=session_name(replica_id) if replica_id else None)
    if migrate:
        upgrade_to_head(db.engine)
    old_keys = tuple(decode_key(key, "ENCRYPTION_KEY_OLD") for key in settings.encryption_key_old)
    keybox = KeyBox(decode_key(settings.encryption_key), old_keys=old_keys)
    bus = EventBus()
    market = MarketState(settings.symbols, clock=market_clock)
    rules = simulated_rules(settings.symbols)
    simulator = None
    if settings.market_data == "simulated":
        simulator = SimulatedMarket(market, rules, seed=settings.sim_seed)
        simulator.backfill()
    feed = None
    if settings.market_data == "binance-testnet":
        feed = CcxtMarketFeed(
            market,
            rules,
            rest_url=settings.binance_testnet_url,
            stream_url=settings.binance_testnet_stream_url,
            ws_api_url=settings.binance_testnet_ws_api_url,
        )
    publisher = PricePublisher(market, bus)
    market.subscribe(publisher.on_change)
    paper = PaperVenue(
        market, rules, seed=settings.sim_seed, maker_fee=settings.paper_maker_fee, taker_fee=settings.paper_taker_fee
    )
    venues = VenueDirectory(rules, keybox, binance_factory(settings))
    open_orders = OpenOrderCounts()
    trading_states = TradingStates()
    recorder = Recorder(open_orders, trading_states)
    equity = EquityRecorder(db, market)

    def publish_executed(event: UserEvent) -> None:
        """The engines' committed events: to subscribers, and balance changes to the equity snapshots."""
        bus.publish_user(event)
        equity.on_event(event)

    external = ExchangeExecutor(db, venues, publish_executed, recorder)
    engine = ExecutionCore(PaperExecutor(db, paper, publish_executed, recorder), external, open_orders)
    market.subscribe_trades(engine.on_market_trade)
    accounts = AccountService(db, keybox=keybox, make_venue=binance_factory(settings), exchange=external)
    activity = ActivityLog(db)
    orders = OrderService(
        db,
        accounts,
        venues.rules_for,
        market.last_price,
        engine,
        bus.publish_user,
        # The feed's prices are the testnet's only when the feed is the testnet's.
        priced_venues=frozenset({Venue.PAPER, *([Venue.BINANCE_TESTNET] if feed is not None else [])}),
        open_orders=open_orders,
        trading=trading_states,
    )
    portfolio = PortfolioService(db, accounts, market, engine, settings)
    alerts = AlertService(db, rules, bus)
    auth = AuthService(db, settings, activity=activity)
    api_keys = ApiKeyService(db, settings.api_key_requests_per_second)
    webhooks = build_webhooks(settings, db, keybox, bus, alerts)
    fanout = None
    if settings.redis_url:
        fanout = RedisFanout(settings.redis_url, channel_prefix=settings.redis_channel_prefix, origin=replica_id)
        fanout.attach(bus, auth.versions, api_keys.cache, webhooks)
    cluster = lease_db = None
    if replica_id is not None:
        lease_db = Database(settings.database_url, application_name=session_name(replica_id))
        cluster = ClusterExecution(settings, db, engine, bus, replica_id, lease_db=lease_db)

    return Services(
        settings=settings,
        db=db,
        keybox=keybox,
        bus=bus,
        market=market,
        rules=rules,
        venues=venues,
        auth=auth,
        accounts=accounts,
        engine=engine,
        orders=orders,
        portfolio=portfolio,
        jobs=Jobs(external, engine, equity),
        alerts=alerts,
        webhooks=webhooks,
        activity=activity,
        api_keys=api_keys,
        trading=TradingStateService(db, accounts, trading_states, orders, bus.publish_user),
        closer=PositionCloser(orders, venues.rules_for),
        statements=StatementService(db, accounts),
        equity=equity,
        history=PortfolioHistory(db, accounts, equity, rules),
        simulator=simulator,
        feed=feed,
        fanout=fanout,
        cluster=cluster,
        feed_leader=build_feed_leader(
            settings, market, simulator, feed, lease_db or db, owner=cluster.replica_id if cluster else None
        ),
        lease_db=lease_db,
    )


def build_webhooks(
    settings: Settings, db: Database, keybox: KeyBox, bus: EventBus, alerts: AlertService
) -> WebhookService:
    """Outgoing webhooks: the SSRF guard from WEBHOOK_ALLOWED_HOSTS, the delivery queue and retry policy."""
    guard = HostGuard(settings.webhook_allowed_hosts)
    initial = settings.webhook_retry_initial_seconds
    options = DeliveryOptions(
        timeout=settings.webhook_timeout_seconds,
        policy=RetryPolicy(initial=initial, maximum=max(60.0, initial), max_attempts=settings.webhook_max_attempts),
        queue_size=settings.webhook_queue_size,
    )
    dispatcher = WebhookDispatcher(db, keybox, guard, options)
    return WebhookService(db, keybox, bus, alerts, guard, dispatcher, max_per_user=settings.webhook_max_per_user)
