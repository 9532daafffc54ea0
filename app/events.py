"""In-process pub/sub.

- User events (durable): every order/fill/balance change is first stored in the events table with the user's next
  `seq`, then published here *after commit*. Subscribers are filtered by user id, so nobody sees another user's
  events. A subscriber that falls behind can always re-read the log from its last seq (no event is ever lost).
- Several replicas (REDIS_URL, app/fanout.py): `relay` hands every committed user event on to the other replicas,
  which deliver it with `deliver_remote`. Subscribers that cause a side effect once per event (webhooks) subscribe
  with `remote=False` and hear only the events this replica committed; viewers (sockets, pages) hear both.
- Prices (latest-value): one pre-serialised PRICE_UPDATE per symbol change; subscribers keep only the newest per
  symbol, so a slow consumer gets the latest price, never a backlog.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from app.domain import fmt
from app.market.models import Ticker

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UserEvent:
    user_id: str
    seq: int  # 0 until the storing transaction commits (the log numbers events at commit)
    type: str
    data: dict[str, Any]
    payload: str = ""  # `data` as stored in the log (JSON), serialised once and reused by every socket
    ts: int = 0

    @classmethod
    def create(cls, user_id: str, type_: str, data: dict[str, Any], ts: int) -> UserEvent:
        # orjson: the payload is built on the hot path of every order (several events each), ~5x json.dumps.
        return cls(user_id, 0, type_, data, orjson.dumps(data).decode(), ts)

    def numbered(self, seq: int) -> None:
        self.seq = seq

    def message(self) -> str:
        """The WebSocket message: {"type", "seq", "data"}."""
        payload = self.payload or json.dumps(self.data, separators=(",", ":"))
        return f'{{"type":"{self.type}","seq":{self.seq},"data":{payload}}}'


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    symbol: str
    ticker: Ticker
    message: str  # serialised once per change, shared by every socket


UserCallback = Callable[[UserEvent], None]
PriceCallback = Callable[[PriceUpdate], None]
Relay = Callable[[UserEvent], None]


def ticker_message(ticker: Ticker) -> str:
    data = {
        "symbol": ticker.symbol,
        "price": fmt(ticker.price),
        "bid": fmt(ticker.bid),
        "ask": fmt(ticker.ask),
        "change_24h_pct": fmt(ticker.change_24h_pct),
        "ts": ticker.ts,
    }
    return json.dumps({"type": "PRICE_UPDATE", "data": data}, separators=(",", ":"))


class EventBus:
    """Synchronous fan-out; callbacks must be cheap and must not raise (errors are logged, not propagated)."""

    def __init__(self) -> None:
        self._user_subscribers: dict[str, list[UserCallback]] = defaultdict(list)
        self._origin_subscribers: dict[str, list[UserCallback]] = defaultdict(list)  # this replica's events only
        self.relay: Relay | None = None  # the replica fan-out (app/fanout.py), when REDIS_URL is set
        self.remote_listeners: list[UserCallback] = []  # hear every event other replicas committed (app/cluster/)
        self._price_subscribers: list[PriceCallback] = []
        self.latest_prices: dict[str, PriceUpdate] = {}

    def subscribe_user(self, user_id: str, callback: UserCallback, *, remote: bool = True) -> Callable[[], None]:
        """Hear the user's committed events; `remote=False`: only those committed by this replica (for side
        effects that must happen once per event, not once per replica). Returns the unsubscribe function."""
        table = self._user_subscribers if remote else self._origin_subscribers
        table[user_id].append(callback)

        def unsubscribe() -> None:
            callbacks = table.get(user_id)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del table[user_id]

        return unsubscribe

    def publish_user(self, event: UserEvent) -> None:
        """An event this replica committed: to every local subscriber, then to the other replicas."""
        for callback in tuple(self._user_subscribers.get(event.user_id, ())):
            _safely(callback, event)
        if self._origin_subscribers:  # only users with webhooks: skip the lookup when nobody has one
            for callback in tuple(self._origin_subscribers.get(event.user_id, ())):
                _safely(callback, event)
        if self.relay is not None:
            _safely(self.relay, event)

    def deliver_remote(self, event: UserEvent) -> None:
        """An event another replica committed (app/fanout.py): to local viewers only, never relayed again."""
        for callback in tuple(self._user_subscribers.get(event.user_id, ())):
            _safely(callback, event)
        for callback in self.remote_listeners:
            _safely(callback, event)

    def subscribe_prices(self, callback: PriceCallback) -> Callable[[], None]:
        self._price_subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._price_subscribers:
                self._price_subscribers.remove(callback)

        return unsubscribe

    def publish_price(self, ticker: Ticker) -> None:
        update = PriceUpdate(ticker.symbol, ticker, ticker_message(ticker))
        self.latest_prices[ticker.symbol] = update
        for callback in tuple(self._price_subscribers):
            _safely(callback, update)

    def subscriber_counts(self) -> tuple[int, int]:
        """(user callbacks, price callbacks): tests use it to prove nothing leaks."""
        users = sum(len(v) for v in self._user_subscribers.values())
        users += sum(len(v) for v in self._origin_subscribers.values())
        return users, len(self._price_subscribers)


def _safely(callback: Callable[[Any], None], argument: Any) -> None:
    try:
        callback(argument)
    except Exception:
        log.exception("event subscriber failed")
