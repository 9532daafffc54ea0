"""Per-venue harnesses of the venue contract suite: everything venue-specific lives here, nothing in the tests.

A harness owns one running service container (built from settings on the test database, as main.py builds it), one
user with one account on its venue, and the market that venue trades in. The contract tests talk to the services'
public interface only (`services.orders`, `services.portfolio`, `services.bus`); they ask the harness to move the
market, to wait until execution has settled, and to restart.

Every harness presents the SAME market, so the tests need no per-venue numbers: BTCUSDT with a book of ten 1 BTC
levels 10 USDT apart on each side of 60,000 (best bid 59,990, best ask 60,010), last price 60,000, and an account
holding 10,000 USDT and 1 BTC. Both venues charge 0.1 % in the received asset.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Self, TypeVar

from app.config import load_settings
from app.events import UserEvent
from app.execution.exchange import ExchangeExecutor
from app.ids import now_ms, venue_client_order_id
from app.market.models import Depth, Trade
from app.orders import OrderRequest
from app.services import Services, build_services
from tests.factories import PASSWORD, unique_email
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.app_venues import point_services_at

T = TypeVar("T")

SYMBOL, BASE, QUOTE = "BTCUSDT", "BTC", "USDT"
CONTRACT_SYMBOLS = [SYMBOL, "ETHUSDT"]  # what the services trade: start-up history is built per symbol
MID = Decimal(60000)
TICK_GAP = Decimal(10)
BEST_BID, BEST_ASK = MID - TICK_GAP, MID + TICK_GAP
LEVEL_QTY = Decimal(1)
MID_PRINT = Decimal("0.001")  # the print that sets the last price
LEVELS = 10
FEE_RATE = Decimal("0.001")
STARTING_BALANCES = {QUOTE: Decimal(10000), BASE: Decimal(1)}
SETTLE_TIMEOUT = 15.0

Levels = Iterable[tuple[Decimal, Decimal]]


def standard_book() -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """The contract's book: (bids best first, asks best first)."""
    bids = [(MID - TICK_GAP * i, LEVEL_QTY) for i in range(1, LEVELS + 1)]
    asks = [(MID + TICK_GAP * i, LEVEL_QTY) for i in range(1, LEVELS + 1)]
    return bids, asks


class VenueHarness(ABC):
    """What a venue must provide to run the contract suite. Subclass it (one small class per venue).

    One harness serves a whole test class (services, venue and one user are started once); each test starts from a
    fresh account (`begin` / `end`): exactly STARTING_BALANCES, nothing open, the contract's market, no events.
    """

    def __init__(self) -> None:
        self.services: Services | None = None
        self.user_id = ""
        self.account_id = ""
        self.events: list[UserEvent] = []  # the user's events since the test began, across restarts, in order

    # ---- lifecycle --------------------------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncIterator[Self]:
        """A started harness: the venue and the services running, the contract's market in place, one user."""
        harness = cls()
        async with harness._venue_context():
            try:
                await harness._start_services()
                harness.user_id = (await harness.app.auth.register(unique_email(), PASSWORD)).id
                harness._listen()
                yield harness
            finally:
                await harness.stop()

    async def begin(self) -> None:
        """A fresh start for one test: an account holding exactly STARTING_BALANCES, nothing open, the market
        reset, no events yet."""
        self.account_id = await self._fresh_account()
        await self._reset_market()
        await self.settle()
        self.events.clear()  # the tests look at what their own orders cause

    async def end(self) -> None:
        """After a test: every open order canceled, so nothing of it can touch the next test's market."""
        await self.app.orders.cancel_all(self.user_id, self.account_id, None)
        await self.settle()
        await self._close_account()

    async def _start_services(self) -> None:
        self.services = build_services(load_settings(symbols=CONTRACT_SYMBOLS), migrate=False)
        self._wire(self.services)
        if self.user_id:
            self._listen()
        await self.services.start()
        await self._after_start()

    def _listen(self) -> None:
        self.app.bus.subscribe_user(self.user_id, self.events.append)

    async def stop(self) -> None:
        """Stop the services (the process ends); the database and the venue keep their state."""
        if self.services is not None:
            await self.services.stop()
            self.services = None

    async def restart(self) -> None:
        """Stop the services and start new ones on the same database (a process restart), then settle."""
        await self.stop()
        await self._start_services()
        await self.settle()

    async def crash_after_accepting(self, **fields: Any) -> dict[str, Any]:
        """Intake stores the order (202) but the process dies before execution sees it; then the app restarts.
        Returns the order as intake acknowledged it."""
        return (await self.crash_after(lambda app: app.orders.submit(self.user_id, self.request(**fields)))).order

    async def crash_after(self, intake: Callable[[Services], Awaitable[T]]) -> T:
        """Run `intake` (it stores orders), but the process dies before execution sees them; then the app
        restarts. Returns what intake answered."""
        services = self.app
        services.orders.queue = _Unplugged()  # the hand-over to execution is lost with the process
        answer = await intake(services)
        await self.restart()
        return answer

    async def accept_without_executing(self, **fields: Any) -> dict[str, Any]:
        """Intake stores the order (202), but execution never sees it: the process is about to die (`restart`)."""
        self.app.orders.queue = _Unplugged()  # the hand-over to execution is lost with the process
        return (await self.app.orders.submit(self.user_id, self.request(**fields))).order

    @property
    def app(self) -> Services:
        assert self.services is not None, "the harness is not running"
        return self.services

    def request(self, **fields: Any) -> OrderRequest:
        """An order request on the trader's account; defaults: MARKET BUY 0.01 BTCUSDT."""
        body: dict[str, Any] = {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "0.01"}
        return OrderRequest(**{**body, **fields, "account_id": self.account_id})

    # ---- what each venue provides -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _venue_context(self) -> AsyncIterator[None]:
        """Anything the venue needs around the harness's life (an exchange server)."""
        yield

    def _wire(self, services: Services) -> None:  # noqa: B027 - a hook, empty for venues that need no wiring
        """Point freshly built services at the venue, before they start (recovery at start-up trades already)."""

    async def _after_start(self) -> None:  # noqa: B027 - a hook
        """The services started: wait until the venue's streams are live."""

    async def _close_account(self) -> None:  # noqa: B027 - a hook
        """The trader's account is no longer used (an exchange account is deleted, so restarts do not reconcile it)."""

    @abstractmethod
    async def _fresh_account(self) -> str:
        """An account of the user on this venue holding exactly STARTING_BALANCES, nothing open; returns its id."""

    @abstractmethod
    async def _reset_market(self) -> None:
        """The contract's book, and a print at MID so the last price is MID."""

    @abstractmethod
    async def settle(self) -> None:
        """Wait until execution has applied everything that is due: every accepted order executed, every market move
        applied, events published. The ONLY place that knows how a venue's execution is awaited."""

    @abstractmethod
    async def set_book(self, bids: Levels, asks: Levels) -> None:
        """Replace the public order book (best first)."""

    @abstractmethod
    async def print_trade(self, price: Decimal, qty: Decimal) -> None:
        """A public trade prints (moves the last price, fills resting orders it reaches, fires triggers); settles."""


class _Unplugged:
    """An execution hand-over that goes nowhere (the process died between intake's commit and execution)."""

    def submit(self, *_command: object) -> None:
        return None

    def cancel(self, *_command: object) -> None:
        return None


class PaperHarness(VenueHarness):
    """The built-in paper exchange: the market is MarketState (depth snapshot + public trades)."""

    def _wire(self, services: Services) -> None:
        bids, asks = standard_book()
        services.market.apply_depth(Depth(SYMBOL, tuple(bids), tuple(asks), now_ms()))
        services.market.apply_trade(Trade(symbol=SYMBOL, price=MID, qty=MID_PRINT, side="SELL", ts=now_ms()))

    async def _fresh_account(self) -> str:
        """The user's paper account, reset (open orders canceled, balances set, positions from zero)."""
        [paper] = [a for a in await self.app.accounts.list_for_user(self.user_id) if a.venue == "paper"]
        await self.app.portfolio.reset_paper(self.user_id, paper.id, {k: str(v) for k, v in STARTING_BALANCES.items()})
        return paper.id

    async def _reset_market(self) -> None:
        self._wire(self.app)

    async def settle(self) -> None:
        await self.app.engine.drain()

    async def set_book(self, bids: Levels, asks: Levels) -> None:
        self.app.market.apply_depth(Depth(SYMBOL, tuple(bids), tuple(asks), now_ms()))

    async def print_trade(self, price: Decimal, qty: Decimal) -> None:
        self.app.market.apply_trade(Trade(symbol=SYMBOL, price=price, qty=qty, side="SELL", ts=now_ms()))
        await self.settle()


class BinanceHarness(VenueHarness):
    """The Binance Spot Testnet adapter against the project's fake exchange (tests/fakes/binance); each trader has
    a new key at the exchange."""

    def __init__(self) -> None:
        super().__init__()
        self.fake: FakeBinance | None = None
        self.api_key = ""
        self._keys = itertools.count(1)
        self._subscriptions = 0

    @asynccontextmanager
    async def _venue_context(self) -> AsyncIterator[None]:
        async with FakeBinance.start(default_account=False) as fake:
            self.fake = fake
            yield

    @property
    def exchange(self) -> FakeBinance:
        assert self.fake is not None
        return self.fake

    def _wire(self, services: Services) -> None:
        point_services_at(services, self.exchange, timeout_ms=1500)

    async def _after_start(self) -> None:
        if self.account_id:
            await self._stream_subscribed()

    async def _fresh_account(self) -> str:
        """A new key at the exchange, added as a new testnet account of the user."""
        number = next(self._keys)
        self.api_key, secret = f"CONTRACTKEY{number:053d}", f"CONTRACTSECRET{number:050d}"
        self.exchange.add_account(self.api_key, secret, {k: str(v) for k, v in STARTING_BALANCES.items()})
        self._subscriptions = 0
        view = await self.app.accounts.add_binance_account(self.user_id, self.api_key, secret, "Contract")
        self.account_id = view.id
        await self._stream_subscribed()
        return view.id

    async def _close_account(self) -> None:
        await self.app.accounts.delete_account(self.user_id, self.account_id)

    async def _reset_market(self) -> None:
        bids, asks = standard_book()
        self.exchange.set_book(SYMBOL, bids, asks)
        self.exchange.trade(SYMBOL, MID, MID_PRINT)

    async def _stream_subscribed(self) -> None:
        """The account's user-data stream is live (a new subscription since the last start), so every executionReport
        of what the tests do reaches the app."""
        wanted = self._subscriptions + 1
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while self._subscription_count() < wanted:
                await asyncio.sleep(0.01)
        self._subscriptions = self._subscription_count()

    def _subscription_count(self) -> int:
        return sum(
            1
            for r in self.exchange.ws_requests
            if r["method"] == "userDataStream.subscribe.signature" and r.get("params", {}).get("apiKey") == self.api_key
        )

    async def settle(self) -> None:
        """Execution is settled when the app's view agrees with the exchange's twice in a row: no order still
        PENDING, every order's status, filled quantity and fills as the exchange has them, balances equal."""
        external = self.app.engine.external
        assert isinstance(external, ExchangeExecutor)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT
        agreed = 0
        while agreed < 2:
            await external.idle()
            difference = await self._difference_from_exchange()
            agreed = agreed + 1 if difference is None else 0
            if difference is not None and loop.time() > deadline:
                raise AssertionError(f"not settled after {SETTLE_TIMEOUT} s: {difference}")
            await asyncio.sleep(0.01)

    async def _difference_from_exchange(self) -> str | None:
        ours = await self.app.orders.list_orders(self.user_id, account_id=self.account_id, limit=1000)
        theirs = {o.client_order_id: o for o in self.exchange.orders(self.api_key)}
        for order in ours:
            if order["status"] == "PENDING":
                return f"order {order['id']} ({order['type']}) is still PENDING"
            at_exchange = theirs.get(venue_client_order_id(order["id"]))
            if at_exchange is None:
                continue
            status = "OPEN" if at_exchange.status == "NEW" else at_exchange.status
            if status == "CANCELED" and order["status"] == "REPLACED":
                status = "REPLACED"  # Binance's word for an order canceled by a cancelReplace
            ours_now = (order["status"], Decimal(order["filled_quantity"]))
            if ours_now != (status, at_exchange.executed_qty):
                return f"order {order['id']} is {ours_now}, at the exchange {(status, at_exchange.executed_qty)}"
            fills = len((await self.app.orders.get(self.user_id, order["id"]))["fills"])
            if fills != len(at_exchange.fills):
                return f"order {order['id']} has {fills} fills, at the exchange {len(at_exchange.fills)}"
        rows = await self.app.portfolio.balances(self.user_id, self.account_id)
        balances = {b.asset: (b.free, b.locked) for b in rows}
        zero = (Decimal(0), Decimal(0))
        for asset, held in self.exchange.balances(self.api_key).items():
            if balances.get(asset, zero) != held:
                return f"{asset} balance is {balances.get(asset, zero)}, at the exchange {held}"
        return None

    async def set_book(self, bids: Levels, asks: Levels) -> None:
        self.exchange.set_book(SYMBOL, bids, asks)

    async def print_trade(self, price: Decimal, qty: Decimal) -> None:
        self.exchange.trade(SYMBOL, price, qty)
        await self.settle()
