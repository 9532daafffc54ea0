"""The one process-wide push mechanism for pages.

Two leading-edge throttles (`Throttle`, one flush per `TICK_SECONDS` on average) do all UI pushing:
- market data: MarketState marks symbols dirty (a set insert plus a cheap "is a flush scheduled?" check on the feed
  path); the flush turns only the dirty symbols into `SymbolUpdate`s (ticker, top of book, recent trades, the last
  two candles per interval — two, so a candle that closed in between is finalised) and emits them once through
  `LiveFeed.market`, a `nicegui.Event`. Pages subscribe with a small synchronous callback inside their page function;
  NiceGUI removes the subscription when the client is deleted.
- user events (orders, fills, balances, price alerts): a page registers an inbox with `watch_user`; the bus and the
  alert service append to it (no UI work on the engine's path) and the flush hands each non-empty inbox to its page
  as one batch. The bus subscription is removed in `client.on_delete`.
Leading edge: the first change after a quiet quarter second goes out on the loop's next turn instead of waiting for a
fixed timer's phase (which alone cost 0-250 ms of lag); a burst is coalesced into one flush per quarter second, and
after a stall a feed at the cap's own rate goes out on arrival again (the throttle's one flush of slack). So every
widget repaints 4 times per second on average at most, whatever the feed or order rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nicegui import Event, app, ui

from app.events import UserEvent
from app.market.models import Candle, Depth, Interval, Ticker, Trade

if TYPE_CHECKING:
    from app.services import Services

TICK_SECONDS = 0.25
BOOK_LEVELS = 15
TRADES_SHOWN = 14
ALERT_EVENT = "PRICE_ALERT"  # UI-only event type for a fired price alert (never sent to API sockets)
SESSION_ENDED = "SESSION_ENDED"  # UI-only: the user logged out everywhere or changed the password

log = logging.getLogger(__name__)


class Throttle:
    """Calls `flush` on the event loop's next turn after a `poke`, at most one flush per `interval` on average.

    A rate limiter, not a fixed timer: flushes are due on the arrival of a change, spaced `interval` apart on
    average, with one flush of slack (a token bucket of rate 1/`interval` and burst 2, in the GCRA form: a flush may
    be due up to one interval before its theoretical time `_tat`). Without the slack the limiter, run at exactly the
    feed's rate (4 updates/s against 4 flushes/s), never caught up after a stall: once a flush was late, every later
    one kept that lateness, because each was spaced a full interval from the late one (measured: 0-250 ms per
    run). With it, after a stall the next change goes out on arrival again; a faster feed still gets one flush per
    interval, carrying the newest state. Spacing counts from when flushes were *due*, not when the loop ran them
    (the loop's lateness must not add up). Pokes while a flush is scheduled cost one attribute check, so it is safe
    on the feed's hot path. Pokes with no running loop (start-up back-fill) are left for the first poke that has
    one; a flush still scheduled on a loop that has since closed does not block the next one."""

    def __init__(self, interval: float, flush: Callable[[], None]) -> None:
        self.interval = interval
        self._flush = flush
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tat = -math.inf  # theoretical time of the next flush at exactly one per interval

    def poke(self) -> None:
        if self._handle is not None and self._loop is not None and not self._loop.is_closed():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is not self._loop:  # a new loop (the app started again in this process): its own clock
            self._loop, self._tat = loop, -math.inf
        self._handle = loop.call_at(self.next_due(loop.time()), self._run)

    def next_due(self, now: float) -> float:
        """Book the next flush for a change that arrived at `now` and return when it is due."""
        due = max(now, self._tat - self.interval)  # up to one interval early: the slack that lets it catch up
        self._tat = max(self._tat, due) + self.interval
        return due

    def _run(self) -> None:
        self._handle = None
        try:
            self._flush()
        except Exception:  # one bad page callback must not stop every later flush
            log.exception("live UI flush failed")


@dataclass(frozen=True, slots=True)
class SymbolUpdate:
    """What changed for one symbol since the last flush, computed once and shared by every page."""

    symbol: str
    ticker: Ticker | None
    depth: Depth | None
    trades: list[Trade]
    candles: dict[Interval, list[Candle]]


@dataclass(eq=False)
class _Inbox:
    """One page's pending user events and the Event its page listens on."""

    user_id: str
    session: Mapping[str, object] | None = None  # the page's browser-session storage (user id, token version)
    ending: int | None = None  # a token version change to check against `session` at the next flush
    pending: list[UserEvent] = field(default_factory=list)
    event: Event[list[UserEvent]] = field(default_factory=Event)
    unsubscribe: list[Callable[[], None]] = field(default_factory=list)

    def outlived(self, version: int) -> bool:
        """Whether the page's own session carries `version` or newer: the browser that changed the password keeps
        its session (components/session.keep), so its other open tabs keep going too."""
        kept = self.session.get("token_version") if self.session is not None else None
        same_user = self.session is not None and self.session.get("user_id") == self.user_id
        return same_user and isinstance(kept, int) and kept >= version

    def close(self) -> None:
        """Stop taking the user's events (the session ended or the page is gone)."""
        for unsubscribe in self.unsubscribe:
            unsubscribe()
        self.unsubscribe.clear()


class LiveFeed:
    """Owns the shared throttles; built once per process by `install`."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.market: Event[dict[str, SymbolUpdate]] = Event()
        self._dirty: set[str] = set()
        self._inboxes: set[_Inbox] = set()
        self._market_flush = Throttle(TICK_SECONDS, self._emit_market)
        self._inbox_flush = Throttle(TICK_SECONDS, self._emit_inboxes)
        services.market.subscribe(self._symbol_changed)
        # Log out everywhere and password changes (from a page, the API or another replica) end open pages.
        services.auth.versions.subscribe_all(self.end_sessions)
        app.on_startup(self._market_flush.poke)  # what changed before the loop ran (history back-fill)

    def _symbol_changed(self, symbol: str) -> None:
        self._dirty.add(symbol)
        self._market_flush.poke()

    def _emit_market(self) -> None:
        if self._dirty:
            dirty = sorted(self._dirty)
            self._dirty.clear()
            self.market.emit({symbol: self.snapshot(symbol) for symbol in dirty})

    def _emit_inboxes(self) -> None:
        for inbox in [i for i in self._inboxes if i.pending or i.ending is not None]:
            if inbox.ending is not None:
                self._settle_ending(inbox, inbox.ending)
            if inbox.pending:
                batch, inbox.pending = inbox.pending, []
                inbox.event.emit(batch)

    def _settle_ending(self, inbox: _Inbox, version: int) -> None:
        """Decided at the flush, not when the version changed: the page that changed the password stores the new
        version in its session right after the change returns. Events held meanwhile go only to a page that
        outlived the change."""
        inbox.ending = None
        if not inbox.outlived(version):
            self._end(inbox)

    def _put(self, inbox: _Inbox, event: UserEvent) -> None:
        inbox.pending.append(event)
        self._inbox_flush.poke()

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
        """Inside a page function: deliver the user's events (and fired alerts) to `callback` in batches (at most
        one per `TICK_SECONDS`), in the page's context; everything is unsubscribed when the client is deleted."""
        inbox = _Inbox(user_id, session=app.storage.user)
        inbox.event.subscribe(callback)  # bound to the page's slot: ui.notify works in the callback
        inbox.unsubscribe.append(self.services.bus.subscribe_user(user_id, lambda event: self._put(inbox, event)))
        inbox.unsubscribe.append(
            self.services.alerts.subscribe(
                user_id, lambda data: self._put(inbox, UserEvent(user_id, 0, ALERT_EVENT, data))
            )
        )
        self._inboxes.add(inbox)

        def cleanup() -> None:
            inbox.close()
            self._inboxes.discard(inbox)

        ui.context.client.on_delete(cleanup)

    def end_sessions(self, user_id: str, version: int | None = None) -> None:
        """The user's token version changed (to `version`, None when unknown): every open page whose browser
        session is older learns on the next flush that its session is over (it goes to /login) and from then on
        receives none of the user's events. Pages of the browser that made the change keep going."""
        for inbox in self._inboxes:
            if inbox.user_id != user_id:
                continue
            if version is None:
                self._end(inbox)
            else:
                inbox.ending = max(version, inbox.ending or 0)
                self._inbox_flush.poke()

    def _end(self, inbox: _Inbox) -> None:
        inbox.close()
        inbox.pending.clear()
        self._put(inbox, UserEvent(inbox.user_id, 0, SESSION_ENDED, {}))

    def counts(self) -> tuple[int, int]:
        """(market subscribers, user inboxes): tests use it to prove pages clean up."""
        return len(self.market.callbacks), len(self._inboxes)


def install(services: Services) -> LiveFeed:
    """Create the process's LiveFeed (main.py -> register_pages calls this once)."""
    feed = LiveFeed(services)
    app.state.live = feed
    return feed
