"""Price alerts: "notify me when BTCUSDT crosses 95000".

Active alerts are kept in memory per symbol, so checking a price update is a dictionary lookup and a comparison
(no DB work on the price path). When the price reaches an alert, the alert is marked triggered with one conditional
UPDATE (`... WHERE triggered_at IS NULL`): exactly one caller wins, so an alert fires once even if two price updates
race. The winner stores an ALERT event in the user's event log (same transaction), publishes it (/ws) and
notifies the user's subscribers (their open pages).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from app.domain import SymbolRules, fmt, normalize_symbol, parse_decimal
from app.errors import NotFound, ValidationFailed
from app.events import EventBus, PriceUpdate, UserEvent
from app.ids import new_id, now_ms
from app.orders import store_event
from storage.db import Database
from storage.models import PriceAlert
from storage.repositories import alerts

log = logging.getLogger(__name__)

ABOVE = "ABOVE"
BELOW = "BELOW"
DIRECTIONS = (ABOVE, BELOW)
MAX_ACTIVE_ALERTS = 100  # per user: keeps the in-memory index small whatever a user does
FIRED_KEPT = 100  # per user: the newest fired alerts stay listed; older ones are deleted when another fires

AlertCallback = Callable[[dict[str, Any]], None]


def alert_data(alert: PriceAlert) -> dict[str, Any]:
    """The wire/UI form of an alert (money as a decimal string)."""
    return {
        "id": alert.id,
        "symbol": alert.symbol,
        "price": fmt(alert.price),
        "direction": alert.direction,
        "created_at": alert.created_at,
        "triggered_at": alert.triggered_at,
    }


def direction_for(target: Decimal, current: Decimal) -> str:
    """The direction a target lies in from the current price: at or above it -> ABOVE, below it -> BELOW."""
    return ABOVE if target >= current else BELOW


def reached(direction: str, target: Decimal, price: Decimal) -> bool:
    """True when `price` is at or through `target` in the alert's direction."""
    return price >= target if direction == ABOVE else price <= target


class AlertService:
    """Create, list and delete alerts; watch prices and fire each alert once."""

    def __init__(self, db: Database, rules: Mapping[str, SymbolRules], bus: EventBus) -> None:
        self.db = db
        self.rules = rules
        self.bus = bus
        self._active: dict[str, dict[str, PriceAlert]] = defaultdict(dict)  # symbol -> alert id -> alert
        self._subscribers: dict[str, list[AlertCallback]] = defaultdict(list)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe_prices: Callable[[], None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the untriggered alerts and start watching prices (idempotent)."""
        if self._unsubscribe_prices is not None:
            return
        for alert in await self.db.read(alerts.active):
            self._active[alert.symbol][alert.id] = alert
        self._unsubscribe_prices = self.bus.subscribe_prices(self.on_price)

    async def stop(self) -> None:
        """Stop watching prices and wait for alerts being marked."""
        if self._unsubscribe_prices is not None:
            self._unsubscribe_prices()
            self._unsubscribe_prices = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- user operations ----------------------------------------------------------------------------------

    async def create(self, user_id: str, symbol: Any, price: Any, direction: Any = None) -> dict[str, Any]:
        """Store a new alert. 422 for an unknown symbol, a price off the tick grid, or a bad direction. Without a
        direction it is where the price lies from the last price (422 NO_MARKET_DATA before the first one)."""
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValidationFailed("symbol is required", field="symbol")
        wanted = normalize_symbol(symbol)
        rules = self.rules.get(wanted)
        if rules is None:
            raise ValidationFailed(f"unknown symbol {wanted}", code="UNKNOWN_SYMBOL", field="symbol")
        value = parse_decimal(price, "price")
        rules.check_price(value)
        if direction is None:
            latest = self.bus.latest_prices.get(wanted)
            if latest is None:
                raise ValidationFailed(
                    f"no price for {wanted} yet: send direction ABOVE or BELOW",
                    code="NO_MARKET_DATA",
                    field="direction",
                )
            direction = direction_for(value, latest.ticker.price)
        kind = direction.upper() if isinstance(direction, str) else direction
        if kind not in DIRECTIONS:
            raise ValidationFailed("direction must be one of ABOVE, BELOW", field="direction")
        alert = PriceAlert(
            id=new_id(), user_id=user_id, symbol=wanted, price=value, direction=kind, created_at=now_ms()
        )

        def store(session: Session) -> PriceAlert:
            if alerts.count_active_for_user(session, user_id) >= MAX_ACTIVE_ALERTS:
                raise ValidationFailed(f"at most {MAX_ACTIVE_ALERTS} active alerts per user", field="price")
            return alerts.add(session, alert)

        await self.db.write(store)
        self._active[wanted][alert.id] = alert
        return alert_data(alert)

    async def list(self, user_id: str) -> list[dict[str, Any]]:
        """The user's alerts, newest first, active and triggered."""
        rows = await self.db.read(lambda s: alerts.list_for_user(s, user_id))
        return [alert_data(row) for row in rows]

    async def delete(self, user_id: str, alert_id: str) -> None:
        """Delete one of the user's alerts; 404 if it is not theirs."""
        if not await self.db.write(lambda s: alerts.delete_owned(s, user_id, alert_id)):
            raise NotFound("Alert not found.", code="ALERT_NOT_FOUND")
        for by_id in self._active.values():
            by_id.pop(alert_id, None)

    # ---- notifications ------------------------------------------------------------------------------------

    def subscribe(self, user_id: str, callback: AlertCallback) -> Callable[[], None]:
        """Call `callback(alert dict)` when one of the user's alerts fires; returns the unsubscriber."""
        self._subscribers[user_id].append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(user_id)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._subscribers[user_id]

        return unsubscribe

    def subscriber_count(self) -> int:
        """How many callbacks are registered: tests use it to prove pages unsubscribe."""
        return sum(len(v) for v in self._subscribers.values())

    # ---- price path ---------------------------------------------------------------------------------------

    def on_price(self, update: PriceUpdate) -> None:
        """Price subscriber: pick the alerts the new price reached and fire them (DB work off this path)."""
        waiting = self._active.get(update.symbol)
        if not waiting:
            return
        price = update.ticker.price
        hits = [alert for alert in waiting.values() if reached(alert.direction, alert.price, price)]
        for alert in hits:
            del waiting[alert.id]  # taken off the index first: a second update cannot schedule it again
            task = asyncio.get_running_loop().create_task(self._fire(alert, price))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fire(self, alert: PriceAlert, price: Decimal) -> None:
        ts = now_ms()
        data = {**alert_data(alert), "triggered_at": ts, "trigger_price": fmt(price)}

        def mark(session: Session) -> UserEvent | None:
            if not alerts.mark_triggered(session, alert.id, ts):
                return None
            alerts.prune_fired(session, alert.user_id, FIRED_KEPT)  # alerts that fire at once must not pile up
            return store_event(session, alert.user_id, "ALERT", data, ts)  # the durable ALERT event of /ws

        try:
            event = await self.db.write(mark)
        except Exception:
            log.exception("could not mark price alert %s", alert.id)
            self._active[alert.symbol][alert.id] = alert  # try again on the next price
            return
        if event is None:
            return  # deleted meanwhile, or another path fired it first
        alert.triggered_at = ts
        self.bus.publish_user(event)
        for callback in tuple(self._subscribers.get(alert.user_id, ())):
            try:
                callback(data)
            except Exception:
                log.exception("price alert subscriber failed")
