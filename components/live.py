"""The one process-wide push mechanism for pages.

One `app.timer` (4 Hz) does all UI pushing:
- market data: MarketState marks symbols dirty (a set insert on the feed path); each tick turns only the dirty
  symbols into `SymbolUpdate`s (ticker, top of book, recent trades, the last two candles per interval — two, so a
  candle that closed between ticks is finalised) and emits them once through `LiveFeed.market`, a `nicegui.Event`.
  Pages subscribe with a small synchronous callback inside their page function; NiceGUI removes the subscription
  when the client is deleted.
- user events (orders, fills, balances, price alerts): a page registers an inbox with `watch_user`; the bus and the
  alert service append to it (no UI work on the engine's path) and the same tick hands each non-empty inbox to its
  page as one batch. The bus subscription is removed in `client.on_delete`.
So every widget repaints at most 4 times per second, whatever the feed or order rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nicegui import Event, app, ui
from nicegui.timer import Timer

from app.events import UserEvent
from app.market.models import Candle, Depth, Interval, Ticker, Trade

if TYPE_CHECKING:
    from app.services import Services

TICK_SECONDS = 0.25
BOOK_LEVELS = 15
TRADES_SHOWN = 14
ALERT_EVENT = "PRICE_ALERT"  # UI-only event type for a fired price alert (never sent to API sockets)
SESSION_ENDED = "SESSION_ENDED"  # UI-only: the user logged out everywhere or changed the password


@dataclass(frozen=True, slots=True)
class SymbolUpdate:
    """What changed for one symbol since the last tick, computed once and shared by every page."""

    symbol: str
    ticker: Ticker | None
    depth: Depth | None
    trades: list[Trade]
    candles: dict[Interval, list[Candle]]


@dataclass(eq=False)
class _Inbox:
    """One page's pending user events and the Event its page listens on."""

    user_id: str
    pending: list[UserEvent] = field(default_factory=list)
    event: Event[list[UserEvent]] = field(default_factory=Event)

    def put(self, event: UserEvent) -> None:
        self.pending.append(event)


class LiveFeed:
    """Owns the shared timer; built once per process by `install`."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.market: Event[dict[str, SymbolUpdate]] = Event()
        self._dirty: set[str] = set()
        self._inboxes: set[_Inbox] = set()
        self._timer: Timer | None = None
        services.market.subscribe(self._dirty.add)
        app.on_startup(self._start)

    def _start(self) -> None:
        # Created at start-up (not import time) and only once, even if the app's lifespan is entered again.
        if self._timer is None:
            self._timer = app.timer(TICK_SECONDS, self.tick)

    def tick(self) -> None:
        """Emit the dirty symbols' updates and flush every non-empty inbox (runs on the shared timer)."""
        if self._dirty:
            dirty = sorted(self._dirty)
            self._dirty.clear()  # the same set object: MarketState holds its bound `add`
            self.market.emit({symbol: self.snapshot(symbol) for symbol in dirty})
        for inbox in [i for i in self._inboxes if i.pending]:
            batch, inbox.pending = inbox.pending, []
            inbox.event.emit(batch)

    def snapshot(self, symbol: str) -> SymbolUpdate:
        """The current market view of `symbol` (also used to paint a page when it opens)."""
        market = self.services.market
        return SymbolUpdate(
            symbol=symbol,
            ticker=market.ticker(symbol),
            depth=market.depth(symbol, BOOK_LEVELS),
            trades=market.trades(symbol, TRADES_SHOWN),
            candles={interval: market.candles(symbol, interval, 2) for interval in Interval},
        )

    def watch_user(self, user_id: str, callback: Callable[[list[UserEvent]], None]) -> None:
        """Inside a page function: deliver the user's events (and fired alerts) to `callback` in batches on the
        shared tick, in the page's context; everything is unsubscribed when the client is deleted."""
        inbox = _Inbox(user_id)
        inbox.event.subscribe(callback)  # bound to the page's slot: ui.notify works in the callback
        unsubscribe_bus = self.services.bus.subscribe_user(user_id, inbox.put)
        unsubscribe_alerts = self.services.alerts.subscribe(
            user_id, lambda data: inbox.put(UserEvent(user_id, 0, ALERT_EVENT, data))
        )
        self._inboxes.add(inbox)

        def cleanup() -> None:
            unsubscribe_bus()
            unsubscribe_alerts()
            self._inboxes.discard(inbox)

        ui.context.client.on_delete(cleanup)

    def end_sessions(self, user_id: str) -> None:
        """Tell every open page of the user that its session is over (they go to /login on the next tick)."""
        for inbox in self._inboxes:
            if inbox.user_id == user_id:
                inbox.put(UserEvent(user_id, 0, SESSION_ENDED, {}))

    def counts(self) -> tuple[int, int]:
        """(market subscribers, user inboxes): tests use it to prove pages clean up."""
        return len(self.market.callbacks), len(self._inboxes)


def install(services: Services) -> LiveFeed:
    """Create the process's LiveFeed (main.py -> register_pages calls this once)."""
    feed = LiveFeed(services)
    app.state.live = feed
    return feed
