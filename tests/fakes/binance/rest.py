"""REST handlers of the fake Binance Spot API (``/api/v3/...``), mixed into :class:`FakeBinance`."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import BinanceError, Order, fmt, mandatory

if TYPE_CHECKING:
    from .engine import Engine
    from .models import Account

PARAMS = web.RequestKey("params", dict)
RAW_QUERY = web.RequestKey("raw_query", str)
RAW_BODY = web.RequestKey("raw_body", str)
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


class RestMixin:
    """``/api/v3`` endpoint handlers; state lives on :class:`FakeBinance`."""

    engine: Engine

    def server_time(self) -> int:
        raise NotImplementedError

    def _signed(self, request: web.Request) -> Account:
        raise NotImplementedError

    def orders(self, api_key: str, symbol: str | None = None, *, open_only: bool = False) -> list[Order]:
        raise NotImplementedError

    # ------------------------------------------------------------------ public REST
    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.server_time()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        names: list[str] | None = None
        if params.get("symbol"):
            names = [params["symbol"]]
        elif params.get("symbols"):
            names = json.loads(params["symbols"])
        specs = [self.engine.market(n).spec for n in names] if names else [m.spec for m in self.engine.markets.values()]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.server_time(),
                "rateLimits": RATE_LIMITS,
                "exchangeFilters": [],
                "symbols": [s.exchange_info() for s in specs],
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        market = self.engine.market(params.get("symbol"))
        limit = min(int(params.get("limit") or 100), 5000)
        return web.json_response(
            {
                "lastUpdateId": market.update_id,
                "bids": [[fmt(p), fmt(q)] for p, q in market.sorted_bids()[:limit]],
                "asks": [[fmt(p), fmt(q)] for p, q in market.sorted_asks()[:limit]],
            }
        )

    async def _trades(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        trades = self.engine.market(params.get("symbol")).trades
        if params.get("fromId"):
            trades = [t for t in trades if t.trade_id >= int(params["fromId"])]
            trades = trades[: int(params.get("limit") or 500)]
        else:
            trades = trades[-int(params.get("limit") or 500) :]
        return web.json_response([t.rest_json() for t in trades])

    async def _agg_trades(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        trades = self.engine.market(params.get("symbol")).trades
        start, end = params.get("startTime"), params.get("endTime")
        if start:
            trades = [t for t in trades if t.time >= int(start)]
        if end:
            trades = [t for t in trades if t.time <= int(end)]
        if params.get("fromId"):
            trades = [t for t in trades if t.trade_id >= int(params["fromId"])]
        limit = int(params.get("limit") or 500)
        trades = trades[:limit] if (start or params.get("fromId")) else trades[-limit:]
        return web.json_response([t.agg_json() for t in trades])

    async def _klines(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        symbol = params.get("symbol")
        self.engine.market(symbol)
        if not params.get("interval"):
            raise mandatory("interval")
        rows = self.engine.klines(
            str(symbol),
            params["interval"],
            int(params["startTime"]) if params.get("startTime") else None,
            int(params["endTime"]) if params.get("endTime") else None,
            min(int(params.get("limit") or 500), 1000),
        )
        return web.json_response(rows)

    async def _avg_price(self, request: web.Request) -> web.Response:
        market = self.engine.market(request[PARAMS].get("symbol"))
        return web.json_response({"mins": 5, "price": fmt(market.last_price), "closeTime": self.server_time()})

    def _symbols_param(self, params: dict[str, str]) -> list[str] | None:
        if params.get("symbol"):
            self.engine.market(params["symbol"])
            return None
        if params.get("symbols"):
            names = json.loads(params["symbols"])
            for name in names:
                self.engine.market(name)
            return list(names)
        return list(self.engine.markets)

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        names = self._symbols_param(params)
        if names is None:
            return web.json_response(self.engine.ticker(params["symbol"]))
        return web.json_response([self.engine.ticker(n) for n in names])

    async def _ticker_price(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        names = self._symbols_param(params)

        def row(name: str) -> dict[str, str]:
            return {"symbol": name, "price": fmt(self.engine.markets[name].last_price)}

        return web.json_response(row(params["symbol"]) if names is None else [row(n) for n in names])

    async def _book_ticker(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        names = self._symbols_param(params)

        def row(name: str) -> dict[str, str]:
            t = self.engine.ticker(name)
            return {k: t[k] for k in ("symbol", "bidPrice", "bidQty", "askPrice", "askQty")}

        return web.json_response(row(params["symbol"]) if names is None else [row(n) for n in names])

    # ------------------------------------------------------------------ signed REST
    async def _account(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        omit_zero = request[PARAMS].get("omitZeroBalances") == "true"
        balances = [
            {"asset": a, "free": fmt(acct.free.get(a, Decimal(0))), "locked": fmt(acct.locked.get(a, Decimal(0)))}
            for a in acct.assets()
        ]
        if omit_zero:
            balances = [b for b in balances if Decimal(b["free"]) or Decimal(b["locked"])]
        rates = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"}
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": rates,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": acct.update_time,
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": acct.uid,
            }
        )

    async def _commission(self, request: web.Request) -> web.Response:
        self._signed(request)
        symbol = self.engine.market(request[PARAMS].get("symbol")).spec.symbol
        std = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"}
        zero = dict.fromkeys(std, "0.00000000")
        return web.json_response(
            {
                "symbol": symbol,
                "standardCommission": std,
                "specialCommission": zero,
                "taxCommission": zero,
                "discount": {
                    "enabledForAccount": True,
                    "enabledForSymbol": True,
                    "discountAsset": "BNB",
                    "discount": "0.75000000",
                },
            }
        )

    async def _new_order(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        params = request[PARAMS]
        order = self.engine.place_order(acct, params)
        # Binance's default response type: FULL for MARKET/LIMIT, ACK for everything else.
        default = "FULL" if order.type in ("MARKET", "LIMIT") else "ACK"
        return web.json_response(order.new_order_json(params.get("newOrderRespType") or default))

    async def _test_order(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        self.engine.place_order(acct, request[PARAMS], test=True)
        if request[PARAMS].get("computeCommissionRates") == "true":
            std = {"maker": "0.00100000", "taker": "0.00100000"}
            return web.json_response({"standardCommissionForOrder": std, "taxCommissionForOrder": std})
        return web.json_response({})

    async def _get_order(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        order = self.engine.find_order(acct, request[PARAMS], missing=(-2013, "Order does not exist."))
        return web.json_response(order.query_json())

    @staticmethod
    def _cancel_json(order: Order, cancel_cid: str, now: int) -> dict[str, Any]:
        data = order.base_json()
        # The cancel response's clientOrderId is the *cancel* request's id; the original moves to origClientOrderId.
        data["origClientOrderId"] = order.client_order_id
        data["clientOrderId"] = cancel_cid
        data["transactTime"] = now
        data["selfTradePreventionMode"] = "EXPIRE_MAKER"
        return data

    async def _cancel_order(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        params = request[PARAMS]
        target = self.engine.find_order(acct, params, missing=(-2011, "Unknown order sent."))
        cancel_cid, legs = self.engine.cancel_order(acct, params)
        now = self.server_time()
        if target.order_list_id < 0:
            return web.json_response(self._cancel_json(target, cancel_cid, now))
        return web.json_response(self._list_json(target.order_list_id, "", legs, now, cancel_cid))

    def _list_json(
        self, list_id: int, list_cid: str, legs: list[Order], now: int, cancel_cid: str | None = None
    ) -> dict[str, Any]:
        done = all(not o.is_open for o in legs)
        return {
            "orderListId": list_id,
            "contingencyType": "OCO",
            "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
            "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
            "listClientOrderId": list_cid,
            "transactionTime": now,
            "symbol": legs[0].symbol,
            "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id} for o in legs],
            "orderReports": [
                self._cancel_json(o, cancel_cid, now) if cancel_cid else o.new_order_json("RESULT") for o in legs
            ],
        }

    async def _open_orders(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        symbol = request[PARAMS].get("symbol")
        if symbol:
            self.engine.market(symbol)
        return web.json_response([o.query_json() for o in self.orders(acct.api_key, symbol, open_only=True)])

    async def _cancel_all(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        symbol = self.engine.market(request[PARAMS].get("symbol")).spec.symbol
        out: list[dict[str, Any]] = []
        now = self.server_time()
        for order in self.orders(acct.api_key, symbol, open_only=True):
            if not order.is_open:
                continue  # the other leg of an OCO canceled just before
            cancel_cid, legs = self.engine.cancel_order(acct, {"symbol": symbol, "orderId": str(order.order_id)})
            if order.order_list_id < 0:
                out.append(self._cancel_json(order, cancel_cid, now))
            else:
                out.append(self._list_json(order.order_list_id, "", legs, now, cancel_cid))
        if not out:
            # Binance answers -2011 when there was nothing to cancel.
            raise BinanceError(-2011, "Unknown order sent.")
        return web.json_response(out)

    def _history_filter(self, items: list[Any], params: dict[str, str], id_attr: str, id_param: str) -> list[Any]:
        if params.get("startTime"):
            items = [i for i in items if i.time >= int(params["startTime"])]
        if params.get("endTime"):
            items = [i for i in items if i.time <= int(params["endTime"])]
        if params.get(id_param):
            items = [i for i in items if getattr(i, id_attr) >= int(params[id_param])]
        limit = min(int(params.get("limit") or 500), 1000)
        return items[:limit] if params.get(id_param) or params.get("startTime") else items[-limit:]

    async def _all_orders(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        params = request[PARAMS]
        symbol = self.engine.market(params.get("symbol")).spec.symbol
        items = self._history_filter(self.orders(acct.api_key, symbol), params, "order_id", "orderId")
        return web.json_response([o.query_json() for o in items])

    async def _my_trades(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        params = request[PARAMS]
        symbol = self.engine.market(params.get("symbol")).spec.symbol
        fills = sorted((f for o in self.orders(acct.api_key, symbol) for f in o.fills), key=lambda f: f.trade_id)
        if params.get("orderId"):
            fills = [f for f in fills if f.order_id == int(params["orderId"])]
        items = self._history_filter(fills, params, "trade_id", "fromId")
        return web.json_response([f.my_trade_json() for f in items])

    async def _new_oco(self, request: web.Request) -> web.Response:
        acct = self._signed(request)
        list_id, list_cid, legs = self.engine.place_oco(acct, request[PARAMS])
        body = self._list_json(list_id, list_cid, legs, self.server_time())
        if request[PARAMS].get("newOrderRespType", "ACK") == "ACK":
            body.pop("orderReports")
            body["orderReports"] = [o.new_order_json("ACK") for o in legs]
        return web.json_response(body)

    async def _cancel_replace(self, request: web.Request) -> web.Response:
        """``POST /api/v3/order/cancelReplace``: cancel an order and place a new one (rest-api.md "Cancel an Existing
        Order and Send a New Order"). 200 when both halves succeed; otherwise the halves' results travel in
        ``data``: 400 -2022 when the cancel failed (STOP_ON_FAILURE: the new order is not attempted), 409 -2021
        when only one half failed."""
        acct = self._signed(request)
        params = dict(request[PARAMS])
        mode = params.pop("cancelReplaceMode", "")
        if not mode:
            raise mandatory("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise BinanceError(-1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
        cancel = {"symbol": params.get("symbol", "")}
        for ours, theirs in (
            ("cancelOrderId", "orderId"),
            ("cancelOrigClientOrderId", "origClientOrderId"),
            ("cancelNewClientOrderId", "newClientOrderId"),
        ):
            if ours in params:
                cancel[theirs] = params.pop(ours)
        if "orderId" not in cancel and "origClientOrderId" not in cancel:
            raise BinanceError(
                -1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both were empty/null!"
            )
        for name in ("cancelRestrictions", "orderRateLimitExceededMode"):
            params.pop(name, None)
        # Parameters and filters of the new order are checked before either half runs; matching-engine refusals
        # (-2010) happen in the new-order half, after the cancel.
        try:
            self.engine.validate_order(acct, params)
        except BinanceError as err:
            if err.code != -2010:
                raise
        now = self.server_time()
        cancel_result: dict[str, Any]
        try:
            target = self.engine.find_order(acct, cancel, missing=(-2011, "Unknown order sent."))
            cancel_cid, _ = self.engine.cancel_order(acct, cancel)
            cancel_result = self._cancel_json(target, cancel_cid, now)
            canceled = True
        except BinanceError as err:
            cancel_result, canceled = {"code": err.code, "msg": err.msg}, False
        new_result: dict[str, Any] | None = None
        placed = False
        if canceled or mode == "ALLOW_FAILURE":
            try:
                order = self.engine.place_order(acct, params)
                new_result, placed = order.new_order_json(params.get("newOrderRespType") or "FULL"), True
            except BinanceError as err:
                new_result = {"code": err.code, "msg": err.msg}
        data = {
            "cancelResult": "SUCCESS" if canceled else "FAILURE",
            "newOrderResult": "SUCCESS" if placed else ("FAILURE" if new_result is not None else "NOT_ATTEMPTED"),
            "cancelResponse": cancel_result,
            "newOrderResponse": new_result,
        }
        if canceled and placed:
            return web.json_response(data)
        if canceled or placed:
            raise BinanceError(-2021, "Order cancel-replace partially failed.", 409, data)
        raise BinanceError(-2022, "Order cancel-replace failed.", 400, data)
