"""Binance Spot Testnet venue: `ExternalVenue` over ccxt.pro (REST for orders, WS-API user-data stream for updates).

Behaviour the execution engine relies on (app/venues/base.py):
- `submit` checks the symbol's exchangeInfo filters first (VenueRejected, nothing sent), then places the order with
  newClientOrderId = spec.client_order_id and newOrderRespType=FULL. It never re-sends after an ambiguous failure
  (VenueUnavailable); only a -1021 time-sync refusal is resent, same parameters and client order id, after
  resyncing the clock (the exchange refused the first attempt before looking at it).
- 429/418 raise VenueThrottled(retry_after) and arm a per-instance guard: until it passes, every call raises
  VenueThrottled at once without touching the exchange.
- `fetch_order` returns the order with every fill (myTrades), or None when Binance answers -2013.
- `watch` delivers every executionReport as a VenueOrder carrying that report's execution, and every
  outboundAccountPosition as balances; it reconnects with exponential backoff (app/retry.py) until cancelled.
- Every call is bounded: ccxt's REST timeout (`timeout_ms`), WebSocket connect and keepalive limits (client.py),
  and `call_timeout(timeout_ms)` around each call; a venue that does not answer surfaces as VenueUnavailable.
The API secret lives only inside the ccxt client: it is never logged, stored on this object or put in messages.
ccxt's exception text (it carries the signed request URL) never leaves this adapter: errors are re-raised as our
VenueError types `from None`, and logs carry only their messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar

from app.domain import SymbolRules
from app.errors import VenueError, VenueRejected, VenueThrottled
from app.retry import RetryPolicy, Sleep, reconnect_forever
from app.venues.base import (
    BalanceListener,
    OcoSpec,
    OrderListener,
    OrderSpec,
    ReplaceOutcome,
    ReplaceSpec,
    VenueBalance,
    VenueFill,
    VenueOrder,
)
from app.venues.binance import mapping
from app.venues.binance.client import DEFAULT_KEEPALIVE_MS, DEFAULT_TIMEOUT_MS, build_client, call_timeout
from app.venues.binance.errors import (
    BINANCE_CODE,
    BINANCE_DATA,
    ORDER_NOT_FOUND,
    from_ccxt,
    safe_message,
    translate,
    venue_error,
)
from app.venues.binance.filters import SymbolFilters, oco_params, order_params, replace_params
from app.venues.binance.rules import spot_filters
from app.venues.binance.stream import next_item, run_forever

log = logging.getLogger(__name__)

T = TypeVar("T")
TIME_SYNC_RETRIES = 2
MY_TRADES_PAGE = 1000
USER_STREAM_RECONNECT = RetryPolicy(initial=0.5, maximum=60.0)  # forever; reset once subscribed again


def key_hint(api_key: str) -> str:
    """First 4 and last 4 characters: enough to recognise a key, useless to use it."""
    return f"{api_key[:4]}...{api_key[-4:]}" if len(api_key) > 8 else "..."


class BinanceTestnetVenue:
    """One Binance Spot Testnet account (its own keys and ccxt.pro client). See the module docstring."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        rest_url: str,
        stream_url: str,
        ws_api_url: str,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
        enable_rate_limit: bool = True,
        reconnect: RetryPolicy = USER_STREAM_RECONNECT,
    ) -> None:
        """`rest_url` is the REST base without /api/v3, `stream_url` the stream base without /stream, `ws_api_url`
        the WS-API base without /ws-api/v3. `sleep` and `clock` drive the backoff and the throttle guard.
        `timeout_ms` bounds each REST request and WebSocket connect, `keepalive_ms` the silence of a socket.
        `reconnect` is the user-data stream's backoff. `enable_rate_limit` keeps ccxt's own request pacing
        (Binance's IP weight budget); tests turn it off."""
        self._client = build_client(
            api_key,
            api_secret,
            rest_url=rest_url,
            stream_url=stream_url,
            ws_api_url=ws_api_url,
            timeout_ms=timeout_ms,
            keepalive_ms=keepalive_ms,
            enable_rate_limit=enable_rate_limit,
        )
        self._call_timeout = call_timeout(timeout_ms)
        self._reconnect = reconnect
        self._hint = key_hint(api_key)
        self._rest_url = rest_url
        self._sleep = sleep
        self._clock = clock
        self._throttled_until: float | None = None
        self._filters: dict[str, SymbolFilters] | None = None
        self._watching = False

    def __repr__(self) -> str:
        return f"BinanceTestnetVenue(api_key={self._hint!r}, rest_url={self._rest_url!r})"

    # ------------------------------------------------------------------------------------------ protocol

    async def load_rules(self) -> Mapping[str, SymbolRules]:
        """Tick, step, min qty, min notional and max qty of every trading spot symbol, from exchangeInfo."""
        filters = await self._load_filters(reload=True)
        return {symbol: f.rules() for symbol, f in filters.items() if f.status == "TRADING"}

    async def check_credentials(self) -> None:
        """GET /api/v3/account (signed). A refused key raises VenueRejected with Binance's words."""
        await self._call(lambda: self._client.private_get_account())

    async def submit(self, spec: OrderSpec) -> VenueOrder:
        """Place `spec`. VenueRejected: refused (before sending, or by Binance). VenueUnavailable: unknown outcome,
        resolve with fetch_order. VenueThrottled: back off."""
        filters = (await self._load_filters()).get(spec.symbol)
        if filters is None:
            raise VenueRejected(f"Unknown symbol {spec.symbol} on Binance testnet.")
        params = order_params(spec, filters)
        raw = await self._call(lambda: self._client.private_post_order(dict(params)))
        return mapping.parse_order(raw, mapping.placement_fills(raw))

    async def submit_oco(self, spec: OcoSpec) -> list[VenueOrder]:
        """Place a bracket's exit pair as one OCO order list (POST /api/v3/orderList/oco): both legs or neither.
        Same contract as `submit`; the reports come take-profit leg first."""
        filters = (await self._load_filters()).get(spec.symbol)
        if filters is None:
            raise VenueRejected(f"Unknown symbol {spec.symbol} on Binance testnet.")
        params = oco_params(spec, filters)
        raw = await self._call(lambda: self._client.private_post_orderlist_oco(dict(params)))
        reports = [mapping.parse_order(row, mapping.placement_fills(row)) for row in raw.get("orderReports") or []]
        order = {spec.take_profit_client_order_id: 0, spec.stop_loss_client_order_id: 1}
        return sorted(reports, key=lambda report: order.get(report.client_order_id, 2))

    async def replace(self, spec: ReplaceSpec) -> ReplaceOutcome:
        """Modify/replace through POST /api/v3/order/cancelReplace (what ccxt's edit_order sends for spot, called
        here directly, like every order call). Binance answers 200 when both halves succeeded, 409 (-2021) when the
        cancel succeeded and the new order failed, 400 (-2022) when the cancel failed (the new order was not
        attempted); the last two carry both halves in `data` and are definite answers, not errors."""
        filters = (await self._load_filters()).get(spec.new.symbol)
        if filters is None:
            raise VenueRejected(f"Unknown symbol {spec.new.symbol} on Binance testnet.")
        params = replace_params(spec, filters)

        async def send() -> Mapping[str, Any]:
            try:
                answer: Mapping[str, Any] = await self._client.private_post_order_cancelreplace(dict(params))
            except Exception as exc:
                data = getattr(exc, BINANCE_DATA, None)
                if getattr(exc, BINANCE_CODE, None) in (-2021, -2022) and isinstance(data, dict):
                    return data
                raise
            return answer

        return _replace_outcome(await self._call(send))

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel by origClientOrderId. An order that is unknown or already closed raises VenueRejected
        (code VENUE_ORDER_NOT_FOUND) with Binance's "Unknown order sent.". Cancelling an OCO leg cancels the whole
        list; Binance answers with the list and the report of this leg is returned."""
        request = {"symbol": symbol, "origClientOrderId": client_order_id}
        raw = await self._call(lambda: self._client.private_delete_order(dict(request)))
        for row in raw.get("orderReports") or []:
            if row.get("origClientOrderId") == client_order_id:
                return mapping.parse_order(row)
        return mapping.parse_order(raw)

    async def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The order by origClientOrderId with all its fills, or None when Binance never received it (-2013)."""
        request = {"symbol": symbol, "origClientOrderId": client_order_id}
        try:
            raw = await self._call(lambda: self._client.private_get_order(dict(request)))
        except VenueRejected as exc:
            if exc.code == ORDER_NOT_FOUND:
                return None
            raise
        fills: list[VenueFill] = []
        if mapping.dec(raw.get("executedQty", "0")) > 0:
            fills = await self._order_fills(symbol, raw["orderId"])
        return mapping.parse_order(raw, fills)

    async def open_orders(self) -> list[VenueOrder]:
        """Every open order of the account, all symbols, with side/type/quantity/prices (for importing orders
        placed elsewhere). Fills are not included: fetch_order gives them."""
        rows = await self._call(lambda: self._client.private_get_openorders({}))
        return [mapping.parse_order(row) for row in rows]

    async def balances(self) -> list[VenueBalance]:
        """Free and locked amounts of every asset the account holds (all-zero assets left out)."""
        raw = await self._call(lambda: self._client.private_get_account())
        return mapping.account_balances(raw)

    async def watch(self, on_order: OrderListener, on_balances: BalanceListener) -> None:
        """Run the user-data stream (WS-API userDataStream.subscribe.signature via ccxt.pro watch_orders /
        watch_balance) until cancelled. Every (re)connection first delivers a balance snapshot; then each
        executionReport becomes one VenueOrder with that report's fill, each outboundAccountPosition one
        balance list. Orders that changed while disconnected are the engine's to reconcile (fetch_order)."""
        if self._watching:
            raise RuntimeError("watch() is already running for this venue")
        self._watching = True
        try:
            await reconnect_forever(
                lambda connected: self._stream_session(on_order, on_balances, connected),
                policy=self._reconnect,
                sleep=self._sleep,
                clock=self._clock,
                on_failure=self._stream_dropped,
            )
        finally:
            self._watching = False
            self._client.user_event_sink = None

    async def close(self) -> None:
        """Close the REST session and every WebSocket of this account's client."""
        await self._client.close()

    # ------------------------------------------------------------------------------------------ internals

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Run one exchange call through the throttle guard and the error mapping; a -1021 refusal resyncs the
        clock and resends the same request (same parameters, same client order id), at most twice. Each attempt is
        bounded by `call_timeout`; ccxt's exception (its text has the signed URL) is replaced, `from None`."""
        for attempt in itertools.count():
            self._refuse_while_throttled()
            try:
                async with asyncio.timeout(self._call_timeout):
                    return await request()
            except Exception as exc:
                outcome = translate(exc)
                if outcome.time_sync and attempt < TIME_SYNC_RETRIES:
                    log.info("Binance refused the request timestamp; resyncing the clock and resending")
                    await self._resync_time()
                    continue
                if isinstance(outcome.error, VenueThrottled):
                    self._throttled_until = self._clock() + outcome.error.retry_after
                error = outcome.error
            raise error from None
        raise AssertionError("unreachable")

    def _refuse_while_throttled(self) -> None:
        if self._throttled_until is None:
            return
        remaining = self._throttled_until - self._clock()
        if remaining > 0:
            raise VenueThrottled(f"Binance asked to back off; retry in {remaining:.0f}s.", retry_after=remaining)
        self._throttled_until = None

    async def _resync_time(self) -> None:
        try:
            async with asyncio.timeout(self._call_timeout):
                await self._client.load_time_difference()
        except Exception as exc:
            error = translate(exc).error
        else:
            return
        raise error from None

    async def _load_filters(self, reload: bool = False) -> dict[str, SymbolFilters]:
        if self._filters is None or reload:
            markets: dict[str, Any] = await self._call(lambda: self._client.load_markets(reload))
            self._filters = spot_filters(markets)
        return self._filters

    async def _order_fills(self, symbol: str, order_id: object) -> list[VenueFill]:
        fills: list[VenueFill] = []
        request: dict[str, Any] = {"symbol": symbol, "orderId": order_id, "limit": MY_TRADES_PAGE}
        while True:
            rows = await self._call(lambda: self._client.private_get_mytrades(dict(request)))
            # Filter anyway: the fills of exactly this order, whatever the server's paging does.
            fills.extend(mapping.trade_fill(row) for row in rows if str(row.get("orderId")) == str(order_id))
            if len(rows) < MY_TRADES_PAGE:
                return fills
            request["fromId"] = int(rows[-1]["id"]) + 1

    async def _stream_session(
        self, on_order: OrderListener, on_balances: BalanceListener, connected: Callable[[], None]
    ) -> NoReturn:
        """One connection: subscribe, send a balance snapshot, then deliver raw user events until it fails."""
        await self._load_filters()  # ccxt's watchers need markets; errors surface translated
        queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        self._client.user_event_sink = queue.put_nowait
        # The watchers keep ccxt's subscription armed and raise when the socket fails; the events themselves
        # are taken raw from the sink, one by one, so several reports between two wake-ups are all delivered.
        watchers = [
            asyncio.create_task(run_forever(self._client.watch_orders), name="binance-watch-orders"),
            asyncio.create_task(run_forever(self._client.watch_balance), name="binance-watch-balance"),
        ]
        try:
            await self._call(lambda: self._client.authenticate({"type": "spot"}))
            connected()
            await self._deliver_snapshot(on_balances)
            while True:
                try:
                    event = await next_item(queue, watchers)
                except Exception as exc:  # the socket failed: ccxt's text (URLs) stays here
                    raise venue_error(exc) from None
                await self._dispatch(event, on_order, on_balances)
        finally:
            self._client.user_event_sink = None
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self._drop_user_socket()

    async def _drop_user_socket(self) -> None:
        """Close the WS-API socket after a session: ccxt marks it subscribed before Binance confirms, so a
        subscribe abandoned on timeout would otherwise make the next session skip subscribing."""
        ws_api = str(self._client.urls["api"]["ws"]["ws-api"]["spot"])
        for url, socket in list((self._client.clients or {}).items()):
            if str(url).startswith(ws_api):
                del self._client.clients[url]
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._call_timeout):
                        await socket.close()

    def _stream_dropped(self, error: Exception | None, delay: float) -> None:
        reason = "session ended" if error is None else safe_message(error)
        log.warning("Binance user-data stream (%s) dropped (%s); reconnecting in %.1fs", self._hint, reason, delay)

    async def _deliver_snapshot(self, on_balances: BalanceListener) -> None:
        try:
            snapshot = await self.balances()
        except VenueError as exc:
            log.warning("Binance balance snapshot failed after (re)connecting: %s", exc.message)
            return
        await self._notify(on_balances(snapshot))

    async def _dispatch(self, event: Mapping[str, Any], on_order: OrderListener, on_balances: BalanceListener) -> None:
        kind = event.get("e")
        try:
            if kind == "executionReport":
                await self._notify(on_order(mapping.execution_report(event)))
            elif kind == "outboundAccountPosition":
                await self._notify(on_balances(mapping.account_position(event)))
            # balanceUpdate (deposits, transfers) is always followed by an outboundAccountPosition.
        except VenueError as exc:
            log.error("Unreadable Binance %s event skipped: %s", kind, exc.message)

    @staticmethod
    async def _notify(delivery: Awaitable[None]) -> None:
        # A listener's bug must not tear down the stream for every later update.
        try:
            await delivery
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if from_ccxt(exc):
                log.error("Binance user-data listener failed: %s", safe_message(exc))
            else:
                log.exception("Binance user-data listener failed")


def _replace_outcome(raw: Mapping[str, Any]) -> ReplaceOutcome:
    """Both halves of a cancelReplace answer: an order object, or {"code", "msg"} for the half that failed."""

    def half(key: str) -> tuple[VenueOrder | None, str | None]:
        part = raw.get(key)
        if not isinstance(part, Mapping):
            return None, None
        if "code" in part and "orderId" not in part:
            return None, str(part.get("msg") or f"Binance refused it (code {part.get('code')}).")
        return mapping.parse_order(part, mapping.placement_fills(part)), None

    canceled, cancel_error = half("cancelResponse")
    new, new_error = half("newOrderResponse")
    return ReplaceOutcome(canceled, cancel_error, new, new_error)
