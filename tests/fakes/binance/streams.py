"""Market streams (``/stream``, ``/ws``) and WebSocket API (``/ws-api/v3``), mixed into :class:`FakeBinance`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import INTERVALS_MS, BinanceError, PublicTrade, fmt, mandatory
from .signing import verify_signature

if TYPE_CHECKING:
    from .engine import Engine
    from .models import Account


@dataclass
class WsConnection:
    """An open WebSocket (market stream or WS-API) with an ordered outgoing queue."""

    ws: web.WebSocketResponse
    request: web.Request
    combined: bool = False
    streams: set[str] = field(default_factory=set)
    user_subs: dict[int, str] = field(default_factory=dict)  # WS-API subscriptionId -> api key
    next_sub: int = 0
    connected_at: int = 0
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


class StreamsMixin:
    """WebSocket endpoints and the fan-out of engine events; state lives on :class:`FakeBinance`."""

    engine: Engine
    ws_requests: list[dict[str, Any]]
    _stream_conns: list[WsConnection]
    _api_conns: list[WsConnection]
    _weight_used: int
    muted_user_streams: set[str]
    unanswered_ws_api_requests: int

    def server_time(self) -> int:
        raise NotImplementedError

    def _authenticate(self, api_key: str | None) -> Account:
        raise NotImplementedError

    def _check_timing(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ WebSocket plumbing
    async def _open_ws(self, request: web.Request) -> tuple[WsConnection, asyncio.Task[None]]:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = WsConnection(ws=ws, request=request, connected_at=self.server_time())

        async def writer() -> None:
            while True:
                item = await conn.queue.get()
                if item is None or ws.closed:
                    return
                try:
                    await ws.send_str(item)
                except (ConnectionError, RuntimeError):
                    return

        return conn, asyncio.ensure_future(writer())

    async def _stream_ws(self, request: web.Request) -> web.WebSocketResponse:
        conn, writer = await self._open_ws(request)
        # /stream... = combined stream ({"stream","data"} wrapper); /ws... = raw events.
        conn.combined = request.path.startswith("/stream")
        initial = request.query.get("streams", "")
        tail = request.match_info.get("tail", "")
        conn.streams.update(s for s in [*initial.split("/"), *tail.split("/")] if "@" in s)
        self._stream_conns.append(conn)
        try:
            async for msg in conn.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self._handle_stream_request(conn, msg.data)
        finally:
            if conn in self._stream_conns:
                self._stream_conns.remove(conn)
            conn.queue.put_nowait(None)
            await writer
        return conn.ws

    def _handle_stream_request(self, conn: WsConnection, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            conn.queue.put_nowait(json.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected value"}}))
            return
        req_id, method, params = req.get("id"), req.get("method"), req.get("params") or []
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            reply: dict[str, Any] = {"result": None, "id": req_id}
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            reply = {"result": None, "id": req_id}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(conn.streams), "id": req_id}
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            reply = {"result": None if method == "SET_PROPERTY" else False, "id": req_id}
        else:
            reply = {"error": {"code": 1, "msg": f"Invalid request: unknown method '{method}'"}, "id": req_id}
        conn.queue.put_nowait(json.dumps(reply))

    def _push_stream(self, name: str, data: Any) -> None:
        raw = json.dumps(data)
        wrapped = None
        for conn in self._stream_conns:
            if name in conn.streams:
                if conn.combined:
                    wrapped = wrapped or json.dumps({"stream": name, "data": data})
                    conn.queue.put_nowait(wrapped)
                else:
                    conn.queue.put_nowait(raw)

    def _subscribed(self, prefix: str) -> set[str]:
        return {s for c in self._stream_conns for s in c.streams if s.startswith(prefix)}

    # ------------------------------------------------------------------ engine events -> streams
    def _on_event(self, kind: str, key: str, payload: Any) -> None:
        if kind == "user":
            if key in self.muted_user_streams:
                return  # lost, as on a stream that silently stopped delivering
            for conn in self._api_conns:
                for sub_id, api_key in conn.user_subs.items():
                    if api_key == key:
                        conn.queue.put_nowait(json.dumps({"subscriptionId": sub_id, "event": payload}))
        elif kind == "trade":
            self._on_trade(key, payload)
        elif kind == "depth":
            self._on_depth(key, *payload)

    def _on_trade(self, symbol: str, trade: PublicTrade) -> None:
        low = symbol.lower()
        now = self.server_time()
        self._push_stream(
            f"{low}@trade",
            {
                "e": "trade",
                "E": now,
                "s": symbol,
                "t": trade.trade_id,
                "p": fmt(trade.price),
                "q": fmt(trade.qty),
                "T": trade.time,
                "m": trade.buyer_is_maker,
                "M": True,
            },
        )
        agg = trade.agg_json()
        self._push_stream(f"{low}@aggTrade", {"e": "aggTrade", "E": now, "s": symbol, **agg})
        t = self.engine.ticker(symbol)
        self._push_stream(
            f"{low}@ticker",
            {
                "e": "24hrTicker",
                "E": now,
                "s": symbol,
                "p": t["priceChange"],
                "P": t["priceChangePercent"],
                "w": t["weightedAvgPrice"],
                "x": t["prevClosePrice"],
                "c": t["lastPrice"],
                "Q": t["lastQty"],
                "b": t["bidPrice"],
                "B": t["bidQty"],
                "a": t["askPrice"],
                "A": t["askQty"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
                "O": t["openTime"],
                "C": t["closeTime"],
                "F": t["firstId"],
                "L": t["lastId"],
                "n": t["count"],
            },
        )
        self._push_stream(
            f"{low}@miniTicker",
            {
                "e": "24hrMiniTicker",
                "E": now,
                "s": symbol,
                "c": t["lastPrice"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
            },
        )
        for name in self._subscribed(f"{low}@kline_"):
            interval = name.split("_", 1)[1].split("@")[0]
            if interval not in INTERVALS_MS:
                continue
            row = self.engine.current_kline(symbol, interval)
            if row is None:
                continue
            k = {
                "t": row[0],
                "T": row[6],
                "s": symbol,
                "i": interval,
                "f": row[12],
                "L": row[13],
                "o": row[1],
                "c": row[4],
                "h": row[2],
                "l": row[3],
                "v": row[5],
                "n": row[8],
                "x": False,
                "q": row[7],
                "V": row[9],
                "Q": row[10],
                "B": "0",
            }
            self._push_stream(name, {"e": "kline", "E": now, "s": symbol, "k": k})

    def _on_depth(
        self,
        symbol: str,
        first: int,
        last: int,
        bid_changes: list[tuple[Decimal, Decimal]],
        ask_changes: list[tuple[Decimal, Decimal]],
    ) -> None:
        low = symbol.lower()
        event = {
            "e": "depthUpdate",
            "E": self.server_time(),
            "s": symbol,
            "U": first,
            "u": last,
            "b": [[fmt(p), fmt(q)] for p, q in bid_changes],
            "a": [[fmt(p), fmt(q)] for p, q in ask_changes],
        }
        # Diffs are pushed immediately (no 100ms/1000ms batching); U..u stay contiguous either way.
        self._push_stream(f"{low}@depth", event)
        self._push_stream(f"{low}@depth@100ms", event)
        market = self.engine.markets[symbol]
        bids, asks = market.sorted_bids(), market.sorted_asks()
        for levels in (5, 10, 20):
            partial = {
                "lastUpdateId": last,
                "bids": [[fmt(p), fmt(q)] for p, q in bids[:levels]],
                "asks": [[fmt(p), fmt(q)] for p, q in asks[:levels]],
            }
            self._push_stream(f"{low}@depth{levels}", partial)
            self._push_stream(f"{low}@depth{levels}@100ms", partial)
        if bids and asks:
            self._push_stream(
                f"{low}@bookTicker",
                {
                    "u": last,
                    "s": symbol,
                    "b": fmt(bids[0][0]),
                    "B": fmt(bids[0][1]),
                    "a": fmt(asks[0][0]),
                    "A": fmt(asks[0][1]),
                },
            )

    # ------------------------------------------------------------------ WebSocket API
    async def _api_ws(self, request: web.Request) -> web.WebSocketResponse:
        conn, writer = await self._open_ws(request)
        self._api_conns.append(conn)
        try:
            async for msg in conn.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if self.unanswered_ws_api_requests > 0:  # a hanging venue: the socket lives, no answer comes
                    self.unanswered_ws_api_requests -= 1
                    self.ws_requests.append({"id": None, "method": "<unanswered>", "params": {}})
                    continue
                conn.queue.put_nowait(json.dumps(self._handle_api_request(conn, msg.data)))
        finally:
            if conn in self._api_conns:
                self._api_conns.remove(conn)
            conn.queue.put_nowait(None)
            await writer
        return conn.ws

    def _handle_api_request(self, conn: WsConnection, text: str) -> dict[str, Any]:
        req_id: Any = None
        self._weight_used += 2
        limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
                "count": self._weight_used,
            }
        ]
        try:
            try:
                req = json.loads(text)
            except ValueError as exc:
                raise BinanceError(-1100, "Illegal characters found in a parameter.") from exc
            req_id, method, params = req.get("id"), req.get("method"), req.get("params") or {}
            self.ws_requests.append({"id": req_id, "method": method, "params": params})
            result = self._api_method(conn, str(method), params)
            return {"id": req_id, "status": 200, "result": result, "rateLimits": limits}
        except BinanceError as err:
            return {
                "id": req_id,
                "status": err.status,
                "error": {"code": err.code, "msg": err.msg},
                "rateLimits": limits,
            }

    def _ws_signed(self, params: dict[str, Any]) -> Account:
        """WS-API SIGNED: HMAC over all params except signature, sorted by name, joined as k=v&..."""
        account = self._authenticate(params.get("apiKey"))
        signature = params.get("signature")
        if not signature:
            raise mandatory("signature")
        payload = "&".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(params.items()) if k != "signature"
        )
        if not verify_signature(account.secret, payload, str(signature)):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        self._check_timing(params)
        return account

    def _api_method(self, conn: WsConnection, method: str, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.server_time()}
        if method == "session.status":
            return {
                "apiKey": None,
                "authorizedSince": None,
                "connectedSince": conn.connected_at,
                "returnRateLimits": True,
                "serverTime": self.server_time(),
                "userDataStream": bool(conn.user_subs),
            }
        if method == "userDataStream.subscribe.signature":
            account = self._ws_signed(params)
            sub_id = conn.next_sub
            conn.next_sub += 1
            conn.user_subs[sub_id] = account.api_key
            return {"subscriptionId": sub_id}
        if method == "userDataStream.unsubscribe":
            if "subscriptionId" in params:
                sub_id = int(params["subscriptionId"])
                if sub_id not in conn.user_subs:
                    raise BinanceError(-2035, "User Data Stream subscription not found.")
                del conn.user_subs[sub_id]
            else:
                conn.user_subs.clear()
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": s} for s in sorted(conn.user_subs)]
        raise BinanceError(-1100, f"Illegal characters found in parameter 'method'; unknown method '{method}'.")
