"""In-memory state and matching engine of the fake Binance Spot exchange.

Plain synchronous Python with exact ``Decimal`` arithmetic. The HTTP/WebSocket layer in
:mod:`tests.fakes.binance.server` turns :class:`BinanceError` into Binance's error JSON and fans the
events this engine emits out to stream and WebSocket-API connections.

Model (documented simplifications):

* The order book of a symbol is *external liquidity* controlled by the test (:meth:`Engine.set_book`).
  Taker orders walk it level by level and consume it; every consumed level prints a public trade.
* Resting user orders are kept off that book (they do not show up in ``/depth``). A resting order fills,
  as maker at its own limit price, when a public print crosses it (``price <= limit`` for a BUY,
  ``>= limit`` for a SELL), up to the printed quantity.
* Every print moves the last price, which triggers stop orders.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from decimal import ROUND_DOWN, Decimal
from typing import Any

from .models import (
    COMMISSION_RATE,
    D0,
    EIGHT,
    INTERVALS_MS,
    ORDER_TYPES,
    STOP_TYPES,
    STP_MODE,
    WOULD_TAKE,
    WOULD_TRIGGER,
    Account,
    BinanceError,
    Fill,
    Market,
    Order,
    PublicTrade,
    SymbolSpec,
    fmt,
    mandatory,
    now_ms,
    parse_decimal,
    random_client_id,
)

# Engine events handed to the server layer.
EventSink = Callable[[str, str, Any], None]
"""``emit(kind, key, payload)``: kind is ``"trade"`` (key=symbol, payload=PublicTrade), ``"depth"``
(key=symbol, payload=(U, u, bid_changes, ask_changes)) or ``"user"`` (key=api_key, payload=event dict)."""


class Engine:
    """Accounts, markets, orders and the matching rules. Emits events through ``emit``."""

    def __init__(self, emit: EventSink, clock: Callable[[], int] = now_ms) -> None:
        self.emit = emit
        self.clock = clock
        self.markets: dict[str, Market] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self._order_ids = itertools.count(10_000)
        self._trade_ids = itertools.count(5_000)
        self._list_ids = itertools.count(100)
        self._event_ids = itertools.count(8_000_000)
        # Assets whose balance changed during the current operation, per api key: Binance sends one
        # outboundAccountPosition after the executionReports of an operation.
        self._dirty: dict[str, list[str]] = {}
        self._uids = itertools.count(354_937_868)

    # ------------------------------------------------------------------ setup
    def add_symbol(self, spec: SymbolSpec, last_price: Decimal = D0) -> Market:
        """Register a trading pair."""
        market = Market(spec=spec, last_price=last_price, open_price=last_price)
        self.markets[spec.symbol] = market
        return market

    def add_account(self, api_key: str, secret: str, balances: dict[str, Any] | None = None) -> Account:
        """Create (or replace) an account with free balances."""
        account = Account(api_key=api_key, secret=secret, uid=next(self._uids), update_time=self.clock())
        for asset, amount in (balances or {}).items():
            account.free[asset] = Decimal(str(amount))
            account.locked[asset] = D0
        self.accounts[api_key] = account
        return account

    def market(self, symbol: str | None) -> Market:
        """Look a symbol up: -1102 when missing, -1121 when unknown."""
        if not symbol:
            raise mandatory("symbol")
        market = self.markets.get(symbol)
        if market is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    # ------------------------------------------------------------------ book
    def set_book(
        self,
        symbol: str,
        bids: Iterable[tuple[Any, Any]],
        asks: Iterable[tuple[Any, Any]],
    ) -> None:
        """Replace the external book of ``symbol`` and emit one depth diff for the changes."""
        market = self.market(symbol)
        new_bids = {Decimal(str(p)): Decimal(str(q)) for p, q in bids if Decimal(str(q)) > 0}
        new_asks = {Decimal(str(p)): Decimal(str(q)) for p, q in asks if Decimal(str(q)) > 0}
        bid_changes = _diff(market.bids, new_bids)
        ask_changes = _diff(market.asks, new_asks)
        market.bids, market.asks = new_bids, new_asks
        self._emit_depth(market, bid_changes, ask_changes)

    def _emit_depth(
        self,
        market: Market,
        bid_changes: list[tuple[Decimal, Decimal]],
        ask_changes: list[tuple[Decimal, Decimal]],
    ) -> None:
        if not bid_changes and not ask_changes:
            return
        first = market.update_id + 1
        market.update_id += 1
        self.emit("depth", market.spec.symbol, (first, market.update_id, bid_changes, ask_changes))

    # ------------------------------------------------------------------ orders
    def place_order(
        self,
        account: Account,
        params: dict[str, str],
        *,
        test: bool = False,
        order_list_id: int = -1,
        lock: bool = True,
    ) -> Order:
        """Validate and place an order (``POST /api/v3/order``); returns it after immediate matching."""
        order = self.validate_order(account, params)
        if test:
            return order
        order.order_id = next(self._order_ids)
        order.order_list_id = order_list_id
        if lock:
            self._lock_for(account, order)
        self.orders[order.order_id] = order
        account.order_times.append(order.time)
        self._report(order, "NEW")
        if lock:
            self._touch(account, [order.lock_asset])
        prints = self._execute(order)
        order.placement_fills = list(order.fills)
        self._process_prints(order.symbol, prints)
        self._flush_positions()
        return order

    def validate_order(self, account: Account, params: dict[str, str]) -> Order:
        """All of Binance's parameter, filter and state checks, without side effects."""
        market = self.market(params.get("symbol"))
        spec = market.spec
        side = params.get("side") or ""
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        otype = params.get("type") or ""
        if not otype:
            raise mandatory("type")
        if otype not in ORDER_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        tif = params.get("timeInForce") or ""
        qty = parse_decimal(params, "quantity")
        quote_qty = parse_decimal(params, "quoteOrderQty")
        price = parse_decimal(params, "price")
        stop = parse_decimal(params, "stopPrice")
        needs_tif = otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        if needs_tif and not tif:
            raise mandatory("timeInForce")
        if tif and not needs_tif:
            raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
        if tif and tif not in ("GTC", "IOC", "FOK"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        if otype == "MARKET":
            if qty is None and quote_qty is None:
                raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if qty is not None and quote_qty is not None:
                raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
            if price is not None:
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
        elif qty is None:
            raise mandatory("quantity")
        if otype in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and price is None:
            raise mandatory("price")
        trailing = _trailing_delta(params)
        if trailing is not None and otype not in STOP_TYPES:
            raise BinanceError(-1106, "Parameter 'trailingDelta' sent when not required.")
        if otype in STOP_TYPES and stop is None and trailing is None:
            raise mandatory("stopPrice")
        if otype in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") and price is not None:
            raise BinanceError(-1106, "Parameter 'price' sent when not required.")
        if otype not in STOP_TYPES and stop is not None:
            raise BinanceError(-1106, "Parameter 'stopPrice' sent when not required.")
        resp_type = params.get("newOrderRespType")
        if resp_type is not None and resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        cid = params.get("newClientOrderId") or random_client_id()
        for other in self.orders.values():
            # Binance rejects a client order id that an *open* order of the account already uses.
            if other.api_key == account.api_key and other.client_order_id == cid and other.is_open:
                raise BinanceError(-2010, "Duplicate order sent.")

        # Filters, in the order Binance evaluates them.
        for value in (price, stop):
            if value is not None and (
                value < spec.min_price or value > spec.max_price or (value - spec.min_price) % spec.tick_size != 0
            ):
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if qty is not None:
            if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step_size != 0:
                raise BinanceError(-1013, "Filter failure: LOT_SIZE")
            if otype in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") and qty > spec.market_max_qty:
                raise BinanceError(-1013, "Filter failure: MARKET_LOT_SIZE")
        ref_price = price if price is not None else (stop if stop is not None else market.last_price)
        notional = quote_qty if quote_qty is not None else (qty or D0) * ref_price
        if notional < spec.min_notional or (otype != "MARKET" and notional > spec.max_notional):
            raise BinanceError(-1013, "Filter failure: NOTIONAL")

        if trailing is not None:
            # TRAILING_DELTA filter (filters.md): above-delta for STOP_LOSS BUY / TAKE_PROFIT SELL, below otherwise.
            above = (otype.startswith("STOP_LOSS") and side == "BUY") or (
                otype.startswith("TAKE_PROFIT") and side == "SELL"
            )
            low, high = (
                (spec.min_trailing_above, spec.max_trailing_above)
                if above
                else (
                    spec.min_trailing_below,
                    spec.max_trailing_below,
                )
            )
            if not low <= trailing <= high:
                raise BinanceError(-1013, "Filter failure: TRAILING_DELTA")
        elif stop is not None and self._stop_hit(otype, side, stop, market.last_price):
            raise BinanceError(-2010, WOULD_TRIGGER)
        if otype == "LIMIT_MAKER" and price is not None:
            best = market.sorted_asks()[:1] if side == "BUY" else market.sorted_bids()[:1]
            if best and ((side == "BUY" and price >= best[0][0]) or (side == "SELL" and price <= best[0][0])):
                raise BinanceError(-2010, WOULD_TAKE)

        ts = self.clock()
        is_stop = otype in STOP_TYPES
        return Order(
            symbol=spec.symbol,
            order_id=-1,
            client_order_id=cid,
            api_key=account.api_key,
            side=side,
            type=otype,
            # Binance reports GTC for MARKET / LIMIT_MAKER / STOP_LOSS orders.
            time_in_force=tif or "GTC",
            price=price or D0,
            orig_qty=qty or D0,
            stop_price=stop or D0,
            orig_quote_qty=quote_qty or D0,
            time=ts,
            update_time=ts,
            working_time=-1 if is_stop else ts,
            trailing_delta=trailing or 0,
            # Without a stopPrice a trailing stop tracks from the price at placement.
            trail_tracking=trailing is not None and stop is None,
            trail_extreme=market.last_price,
        )

    def _lock_for(self, account: Account, order: Order) -> None:
        """Reserve the funds the order can spend; -2010 when the account cannot cover them."""
        spec = self.markets[order.symbol].spec
        if order.side == "SELL":
            order.lock_asset, amount = spec.base, order.orig_qty
        elif order.type == "MARKET" and order.orig_quote_qty > 0:
            order.lock_asset, amount = spec.quote, order.orig_quote_qty
        elif order.type == "MARKET":
            order.lock_asset, amount = spec.quote, self._simulate_cost(order)
        else:
            ref = order.price if order.price > 0 else order.stop_price
            order.lock_asset, amount = spec.quote, order.orig_qty * ref
        account.lock(order.lock_asset, amount)
        order.lock_amount = amount

    def _simulate_cost(self, order: Order) -> Decimal:
        """Quote needed for a MARKET BUY by quantity against the current asks."""
        remaining, cost = order.remaining, D0
        for price, avail in self.markets[order.symbol].sorted_asks():
            take = min(avail, remaining)
            cost += take * price
            remaining -= take
            if remaining <= 0:
                break
        return cost

    @staticmethod
    def _stop_hit(otype: str, side: str, stop: Decimal, last: Decimal) -> bool:
        """Whether the last price has crossed ``stop`` for this stop/take-profit type."""
        if last <= 0:
            return False
        rising = (otype.startswith("STOP_LOSS") and side == "BUY") or (
            otype.startswith("TAKE_PROFIT") and side == "SELL"
        )
        return last >= stop if rising else last <= stop

    def _trail(self, order: Order, last: Decimal) -> bool:
        """A trailing stop on a new last price: start tracking once the stopPrice condition holds (the first such
        trade sets the extreme), follow the best price, trigger on a retrace of trailingDelta BIPS from it."""
        if not order.trail_tracking:
            if not self._stop_hit(order.type, order.side, order.stop_price, last):
                return False
            order.trail_tracking, order.trail_extreme = True, last
            return False
        delta = Decimal(order.trailing_delta) / Decimal(10_000)
        if order.side == "SELL":  # a decrease from the highest price triggers
            if last > order.trail_extreme or order.trail_extreme <= 0:
                order.trail_extreme = last
                return False
            return last <= order.trail_extreme * (1 - delta)
        if last < order.trail_extreme or order.trail_extreme <= 0:  # BUY: an increase from the lowest price
            order.trail_extreme = last
            return False
        return last >= order.trail_extreme * (1 + delta)

    def _execute(self, order: Order) -> list[PublicTrade]:
        """Match a working order against the external book; returns the prints it made."""
        if order.is_stop and not order.triggered:
            return []
        market_like = order.type == "MARKET" or order.type in ("STOP_LOSS", "TAKE_PROFIT")
        limit = None if market_like else order.price
        account = self.accounts[order.api_key]
        if order.type == "MARKET" and order.orig_quote_qty > 0:
            # quoteOrderQty: buy/sell as much as the budget buys, each level rounded down to stepSize.
            order.orig_qty = self._qty_for_quote(order)
            if order.orig_qty <= 0:
                self._finish(order, "EXPIRED")
                return []
        elif market_like and order.side == "BUY":
            extra = self._simulate_cost(order) - order.lock_amount
            if extra > account.free.get(order.lock_asset, D0):
                self._finish(order, "EXPIRED")
                return []
        if order.time_in_force == "FOK" and self._fillable(order, limit) < order.remaining:
            self._finish(order, "EXPIRED")
            return []
        prints = self._take(order, limit)
        if order.is_open:
            if market_like or order.time_in_force == "IOC":
                # Unfilled MARKET / IOC remainder expires.
                self._finish(order, "EXPIRED")
            elif order.side == "BUY":
                # Resting buy keeps exactly remaining * price locked.
                excess = order.lock_amount - order.remaining * order.price
                if excess > 0:
                    self.accounts[order.api_key].unlock(order.lock_asset, excess)
                    order.lock_amount -= excess
        return prints

    def _qty_for_quote(self, order: Order) -> Decimal:
        market = self.markets[order.symbol]
        step = market.spec.step_size
        levels = market.sorted_asks() if order.side == "BUY" else market.sorted_bids()
        budget, total = order.orig_quote_qty, D0
        for price, avail in levels:
            qty = min(avail, (budget / price).quantize(step, rounding=ROUND_DOWN))
            if qty <= 0:
                break
            total += qty
            budget -= qty * price
        return total

    def _fillable(self, order: Order, limit: Decimal | None) -> Decimal:
        market = self.markets[order.symbol]
        levels = market.sorted_asks() if order.side == "BUY" else market.sorted_bids()
        total = D0
        for price, qty in levels:
            if _beyond(order.side, price, limit):
                break
            total += qty
        return total

    def _take(self, order: Order, limit: Decimal | None) -> list[PublicTrade]:
        """Walk the opposite side of the book as taker."""
        market = self.markets[order.symbol]
        spec = market.spec
        book = market.asks if order.side == "BUY" else market.bids
        levels = market.sorted_asks() if order.side == "BUY" else market.sorted_bids()
        prints: list[PublicTrade] = []
        changes: list[tuple[Decimal, Decimal]] = []
        for price, avail in levels:
            if _beyond(order.side, price, limit):
                break
            qty = min(avail, order.remaining)
            if qty <= 0:
                break
            book[price] = avail - qty
            if book[price] <= 0:
                del book[price]
            changes.append((price, book.get(price, D0)))
            trade = PublicTrade(
                trade_id=next(self._trade_ids),
                symbol=spec.symbol,
                price=price,
                qty=qty,
                time=self.clock(),
                buyer_is_maker=order.side == "SELL",
                taker_order_id=order.order_id,
            )
            prints.append(trade)
            self._fill(order, trade.trade_id, price, qty, is_maker=False)
            if not order.is_open:
                break
        if order.side == "BUY":
            self._emit_depth(market, [], changes)
        else:
            self._emit_depth(market, changes, [])
        return prints

    def _fill(self, order: Order, trade_id: int, price: Decimal, qty: Decimal, *, is_maker: bool) -> None:
        """Apply one execution to the order and its account, with 0.1% commission in the received asset."""
        account = self.accounts[order.api_key]
        spec = self.markets[order.symbol].spec
        quote = price * qty
        if order.side == "BUY":
            spend_asset, spend, recv_asset, recv = spec.quote, quote, spec.base, qty
        else:
            spend_asset, spend, recv_asset, recv = spec.base, qty, spec.quote, quote
        commission = (recv * COMMISSION_RATE).quantize(EIGHT)
        if spend > order.lock_amount:
            # Stop-market buys can cost more than reserved at placement: take the rest from free.
            account.lock(spend_asset, spend - order.lock_amount)
            order.lock_amount = spend
        account.locked[spend_asset] = account.locked.get(spend_asset, D0) - spend
        order.lock_amount -= spend
        account.free[recv_asset] = account.free.get(recv_asset, D0) + recv - commission
        account.locked.setdefault(recv_asset, D0)
        ts = self.clock()
        account.update_time = ts
        order.executed_qty += qty
        order.cum_quote += quote
        order.update_time = ts
        order.status = "FILLED" if order.orig_qty > 0 and order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        fill = Fill(
            trade_id=trade_id,
            order_id=order.order_id,
            order_list_id=order.order_list_id,
            symbol=order.symbol,
            price=price,
            qty=qty,
            quote_qty=quote,
            commission=commission,
            commission_asset=recv_asset,
            time=ts,
            is_buyer=order.side == "BUY",
            is_maker=is_maker,
        )
        order.fills.append(fill)
        self._expire_siblings(order)
        if order.status == "FILLED":
            self._release(order)
        self._report(order, "TRADE", fill)
        self._touch(account, [spend_asset, recv_asset])

    def _release(self, order: Order) -> None:
        if order.lock_amount > 0:
            self.accounts[order.api_key].unlock(order.lock_asset, order.lock_amount)
        order.lock_amount = D0

    def _finish(self, order: Order, status: str, cancel_cid: str = "") -> None:
        """Terminal transition (CANCELED / EXPIRED): release locked funds and report."""
        order.status = status
        order.update_time = self.clock()
        had_lock = order.lock_amount > 0
        self._release(order)
        self._report(order, status, orig_cid=cancel_cid)
        if had_lock:
            self._touch(self.accounts[order.api_key], [order.lock_asset])

    def _expire_siblings(self, order: Order) -> None:
        """OCO: once one leg executes, the other leg expires and hands its reservation over."""
        if order.order_list_id < 0:
            return
        for other in self.orders.values():
            if other.order_list_id == order.order_list_id and other is not order and other.is_open:
                if other.lock_amount > 0 and other.lock_asset == order.lock_asset:
                    order.lock_amount += other.lock_amount
                    other.lock_amount = D0
                self._finish(other, "EXPIRED")

    def cancel_order(self, account: Account, params: dict[str, str]) -> tuple[str, list[Order]]:
        """``DELETE /api/v3/order``: returns the cancel's clientOrderId and the canceled order(s).

        Canceling one leg of an OCO cancels the whole list, as on Binance.
        """
        order = self.find_order(account, params, missing=(-2011, "Unknown order sent."))
        if not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        cancel_cid = params.get("newClientOrderId") or random_client_id()
        legs = [order]
        if order.order_list_id >= 0:
            legs = [o for o in self.orders.values() if o.order_list_id == order.order_list_id and o.is_open]
        for leg in legs:
            self._finish(leg, "CANCELED", cancel_cid=cancel_cid)
        self._flush_positions()
        return cancel_cid, legs

    def find_order(self, account: Account, params: dict[str, str], missing: tuple[int, str]) -> Order:
        """Resolve ``orderId`` / ``origClientOrderId`` within ``symbol`` for this account."""
        market = self.market(params.get("symbol"))
        raw_id = params.get("orderId")
        cid = params.get("origClientOrderId")
        if not raw_id and not cid:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        candidates = [
            o for o in self.orders.values() if o.api_key == account.api_key and o.symbol == market.spec.symbol
        ]
        if raw_id:
            try:
                oid = int(raw_id)
            except ValueError as exc:
                raise BinanceError(-1100, "Illegal characters found in parameter 'orderId'.") from exc
            candidates = [o for o in candidates if o.order_id == oid]
        if cid:
            candidates = [o for o in candidates if o.client_order_id == cid]
        if not candidates:
            raise BinanceError(*missing)
        # Prefer the open one when a client id was reused after the first order closed.
        candidates.sort(key=lambda o: (o.is_open, o.order_id))
        return candidates[-1]

    def place_oco(self, account: Account, params: dict[str, str]) -> tuple[int, str, list[Order]]:
        """``POST /api/v3/orderList/oco``: an above and a below leg sharing one reservation."""
        market = self.market(params.get("symbol"))
        side = params.get("side") or ""
        if side not in ("BUY", "SELL"):
            raise mandatory("side") if not side else BinanceError(-1117, "Invalid side.")
        if not params.get("quantity"):
            raise mandatory("quantity")
        legs: list[dict[str, str]] = []
        for pos in ("above", "below"):
            leg_type = params.get(f"{pos}Type")
            if not leg_type:
                raise mandatory(f"{pos}Type")
            if leg_type not in ("LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"):
                raise BinanceError(-1116, "Invalid orderType.")
            leg = {"symbol": market.spec.symbol, "side": side, "type": leg_type, "quantity": params["quantity"]}
            for src, dst in (("Price", "price"), ("StopPrice", "stopPrice"), ("TimeInForce", "timeInForce")):
                if params.get(pos + src):
                    leg[dst] = params[pos + src]
            if params.get(f"{pos}ClientOrderId"):
                leg["newClientOrderId"] = params[f"{pos}ClientOrderId"]
            legs.append(leg)
        validated = [self.validate_order(account, leg) for leg in legs]
        list_id = next(self._list_ids)
        list_cid = params.get("listClientOrderId") or random_client_id()
        # One reservation for the list: the larger of the two legs' needs, held by the first leg.
        spec = market.spec
        if side == "SELL":
            asset, amount = spec.base, validated[0].orig_qty
        else:
            asset = spec.quote
            amount = max(o.orig_qty * (o.price if o.price > 0 else o.stop_price) for o in validated)
        account.lock(asset, amount)
        self._touch(account, [asset])  # Binance reports the list's reservation (outboundAccountPosition)
        placed: list[Order] = []
        for i, leg in enumerate(legs):
            order = self.place_order(account, leg, order_list_id=list_id, lock=False)
            order.lock_asset = asset
            if i == 0:
                order.lock_amount = amount
            placed.append(order)
        return list_id, list_cid, placed

    # ------------------------------------------------------------------ public prints
    def print_trade(self, symbol: str, price: Any, qty: Any, buyer_is_maker: bool = False) -> PublicTrade:
        """Print an external public trade: moves the last price, triggers stops, fills crossed orders."""
        market = self.market(symbol)
        trade = PublicTrade(
            trade_id=next(self._trade_ids),
            symbol=market.spec.symbol,
            price=Decimal(str(price)),
            qty=Decimal(str(qty)),
            time=self.clock(),
            buyer_is_maker=buyer_is_maker,
        )
        self._process_prints(symbol, [trade])
        self._flush_positions()
        return trade

    def _process_prints(self, symbol: str, prints: list[PublicTrade]) -> None:
        market = self.markets[symbol]
        queue = deque(prints)
        guard = 0
        while queue and guard < 10_000:
            guard += 1
            trade = queue.popleft()
            market.trades.append(trade)
            market.last_price = trade.price
            self.emit("trade", symbol, trade)
            self._fill_crossed(market, trade)
            for order in sorted(self.orders.values(), key=lambda o: o.order_id):
                if not (order.symbol == symbol and order.is_open and order.is_stop and not order.triggered):
                    continue
                if order.trailing_delta:
                    hit = self._trail(order, market.last_price)
                else:
                    hit = self._stop_hit(order.type, order.side, order.stop_price, market.last_price)
                if hit:
                    order.triggered = True
                    order.working_time = self.clock()
                    self._expire_siblings(order)
                    queue.extend(self._execute(order))

    def _fill_crossed(self, market: Market, trade: PublicTrade) -> None:
        """Fill resting limit orders that the print trades through, in price-time priority."""
        available = trade.qty
        resting = [
            o
            for o in self.orders.values()
            if o.symbol == market.spec.symbol
            and o.is_working
            and o.order_id != trade.taker_order_id
            and o.type not in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
            and ((o.side == "BUY" and trade.price <= o.price) or (o.side == "SELL" and trade.price >= o.price))
        ]
        resting.sort(key=lambda o: (-o.price if o.side == "BUY" else o.price, o.order_id))
        for order in resting:
            if available <= 0:
                break
            qty = min(order.remaining, available)
            available -= qty
            self._fill(order, next(self._trade_ids), order.price, qty, is_maker=True)

    # ------------------------------------------------------------------ user events
    def _report(self, order: Order, exec_type: str, fill: Fill | None = None, orig_cid: str = "") -> None:
        ts = self.clock()
        event = {
            "e": "executionReport",
            "E": ts,
            "s": order.symbol,
            # On cancel, "c" is the cancel request's id and "C" the original client order id.
            "c": orig_cid or order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force,
            "q": fmt(order.orig_qty),
            "p": fmt(order.price),
            "P": fmt(order.stop_price),
            "F": fmt(D0),
            "g": order.order_list_id,
            "C": order.client_order_id if orig_cid else "",
            "x": exec_type,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": fmt(fill.qty if fill else D0),
            "z": fmt(order.executed_qty),
            "L": fmt(fill.price if fill else D0),
            "n": fmt(fill.commission) if fill else "0",
            "N": fill.commission_asset if fill else None,
            "T": fill.time if fill else ts,
            "t": fill.trade_id if fill else -1,
            "I": next(self._event_ids),
            "w": order.is_working,
            "m": fill.is_maker if fill else False,
            "M": False,
            "O": order.time,
            "Z": fmt(order.cum_quote),
            "Y": fmt(fill.quote_qty if fill else D0),
            "Q": fmt(order.orig_quote_qty),
            "V": STP_MODE,
        }
        if order.working_time > 0:
            event["W"] = order.working_time
        if order.trailing_delta:
            event["d"] = order.trailing_delta  # conditional field of trailing stops
        self.emit("user", order.api_key, event)

    def _touch(self, account: Account, assets: list[str]) -> None:
        account.update_time = self.clock()
        dirty = self._dirty.setdefault(account.api_key, [])
        dirty.extend(a for a in assets if a not in dirty)

    def _flush_positions(self) -> None:
        """Emit one ``outboundAccountPosition`` per account touched by the finished operation."""
        dirty, self._dirty = self._dirty, {}
        ts = self.clock()
        for api_key, assets in dirty.items():
            account = self.accounts[api_key]
            balances = [
                {"a": a, "f": fmt(account.free.get(a, D0)), "l": fmt(account.locked.get(a, D0))} for a in assets
            ]
            self.emit(
                "user", api_key, {"e": "outboundAccountPosition", "E": ts, "u": account.update_time, "B": balances}
            )

    # ------------------------------------------------------------------ market data
    def ticker(self, symbol: str) -> dict[str, Any]:
        """``GET /api/v3/ticker/24hr`` for one symbol, computed from the last 24h of prints."""
        market = self.market(symbol)
        now = self.clock()
        window = [t for t in market.trades if t.time >= now - 86_400_000]
        open_price = window[0].price if window else market.open_price
        last = market.last_price
        high = max((t.price for t in window), default=last)
        low = min((t.price for t in window), default=last)
        volume = sum((t.qty for t in window), D0)
        quote_volume = sum((t.qty * t.price for t in window), D0)
        change = last - open_price
        pct = (change / open_price * 100).quantize(Decimal("0.001")) if open_price else Decimal("0.000")
        bids, asks = market.sorted_bids(), market.sorted_asks()
        return {
            "symbol": symbol,
            "priceChange": fmt(change),
            "priceChangePercent": f"{pct:f}",
            "weightedAvgPrice": fmt(quote_volume / volume if volume else last),
            "prevClosePrice": fmt(open_price),
            "lastPrice": fmt(last),
            "lastQty": fmt(window[-1].qty if window else D0),
            "bidPrice": fmt(bids[0][0] if bids else D0),
            "bidQty": fmt(bids[0][1] if bids else D0),
            "askPrice": fmt(asks[0][0] if asks else D0),
            "askQty": fmt(asks[0][1] if asks else D0),
            "openPrice": fmt(open_price),
            "highPrice": fmt(high),
            "lowPrice": fmt(low),
            "volume": fmt(volume),
            "quoteVolume": fmt(quote_volume),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": window[0].trade_id if window else -1,
            "lastId": window[-1].trade_id if window else -1,
            "count": len(window),
        }

    def klines(
        self, symbol: str, interval: str, start: int | None = None, end: int | None = None, limit: int = 500
    ) -> list[list[Any]]:
        """``GET /api/v3/klines`` rows built from the print tape (empty intervals are skipped)."""
        step = INTERVALS_MS.get(interval)
        if step is None:
            raise BinanceError(-1120, "Invalid interval.")
        buckets: dict[int, list[PublicTrade]] = {}
        for t in self.market(symbol).trades:
            if (start is None or t.time >= start) and (end is None or t.time <= end):
                buckets.setdefault(t.time - t.time % step, []).append(t)
        rows = [_kline_row(open_time, step, trades)[:12] for open_time, trades in sorted(buckets.items())]
        return rows[-limit:] if start is None else rows[:limit]

    def current_kline(self, symbol: str, interval: str) -> list[Any] | None:
        """The candle of ``interval`` containing the latest print (REST row + first/last trade id)."""
        market = self.market(symbol)
        step = INTERVALS_MS.get(interval)
        if step is None or not market.trades:
            return None
        open_time = market.trades[-1].time - market.trades[-1].time % step
        trades = [t for t in market.trades if open_time <= t.time < open_time + step]
        return _kline_row(open_time, step, trades)


def _kline_row(open_time: int, step: int, trades: list[PublicTrade]) -> list[Any]:
    volume = sum((t.qty for t in trades), D0)
    quote = sum((t.qty * t.price for t in trades), D0)
    taker_buy = [t for t in trades if not t.buyer_is_maker]
    return [
        open_time,
        fmt(trades[0].price),
        fmt(max(t.price for t in trades)),
        fmt(min(t.price for t in trades)),
        fmt(trades[-1].price),
        fmt(volume),
        open_time + step - 1,
        fmt(quote),
        len(trades),
        fmt(sum((t.qty for t in taker_buy), D0)),
        fmt(sum((t.qty * t.price for t in taker_buy), D0)),
        "0",
        # Two extra elements (not in Binance's REST row, stripped there) for the kline stream: f and L.
        trades[0].trade_id,
        trades[-1].trade_id,
    ]


def _beyond(side: str, price: Decimal, limit: Decimal | None) -> bool:
    """Whether a book level at ``price`` is worse than the taker's limit."""
    if limit is None:
        return False
    return price > limit if side == "BUY" else price < limit


def _diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[tuple[Decimal, Decimal]]:
    """Level changes between two book sides; removed levels carry quantity 0 (as in depth diffs)."""
    changes = [(p, q) for p, q in new.items() if old.get(p) != q]
    changes += [(p, D0) for p in old if p not in new]
    return sorted(changes)


def _trailing_delta(params: dict[str, str]) -> int | None:
    raw = params.get("trailingDelta")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BinanceError(
            -1100, "Illegal characters found in parameter 'trailingDelta'; legal range is '^[0-9]{1,20}$'."
        )
    return int(raw)
