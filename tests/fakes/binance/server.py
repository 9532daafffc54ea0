"""aiohttp application serving the fake Binance Spot REST API, market streams and WebSocket API."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .engine import Engine
from .models import (
    DEFAULT_BOOK_SEEDS,
    DEFAULT_SYMBOLS,
    Account,
    BinanceError,
    Order,
    PublicTrade,
    SymbolSpec,
    mandatory,
    now_ms,
)
from .rest import PARAMS, RAW_BODY, RAW_QUERY, RestMixin
from .signing import DOC_API_KEY, DOC_SECRET, strip_signature, verify_signature
from .streams import StreamsMixin, WsConnection

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MSG_429 = (
    "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
# Default bodies for injected 5xx answers (errors.md).
SERVER_ERRORS = {
    500: (-1000, "An unknown error occurred while processing the request."),
    502: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in a few minutes."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
}
_API_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{64}$")


def _weight(path: str, params: dict[str, str], method: str) -> int:
    """Approximate request weight of Binance's REST endpoints."""
    name = path.removeprefix("/api/v3/")
    if name == "depth":
        limit = int(params.get("limit") or 100)
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if name in ("ticker/24hr", "ticker/price", "ticker/bookTicker"):
        return 2 if "symbol" in params else 80 if name == "ticker/24hr" else 4
    if name == "openOrders":
        return 6 if "symbol" in params or method == "DELETE" else 80
    table = {
        "exchangeInfo": 20,
        "account": 20,
        "myTrades": 20,
        "allOrders": 20,
        "trades": 25,
        "klines": 2,
        "aggTrades": 4,
        "avgPrice": 2,
        "order": 4 if method == "GET" else 1,
    }
    return table.get(name, 1)


@dataclass
class RequestRecord:
    """One logged REST request."""

    method: str
    path: str
    params: dict[str, str]
    api_key: str | None
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)


@dataclass
class _HttpFault:
    status: int
    remaining: int
    path: str | None
    code: int | None
    msg: str | None
    retry_after: int | None
    text: str | None = None


@dataclass
class _AcceptFault:
    remaining: int
    path: str | None
    delay: float
    drop: bool
    status: int | None = None  # answer this 5xx (Binance's error JSON) instead of the real response


class FakeBinance(RestMixin, StreamsMixin):
    """A protocol-faithful, offline fake of Binance Spot (testnet) for tests.

    Start it with ``async with FakeBinance.start() as fake:``; point ccxt at it with :func:`ccxt_config`.
    Everything else (books, trades, accounts, faults) is driven with plain Python methods.
    """

    def __init__(
        self,
        symbols: Iterable[SymbolSpec] = DEFAULT_SYMBOLS,
        *,
        seed_books: bool = True,
        default_account: bool = True,
    ) -> None:
        self.clock_offset_ms = 0
        self.engine = Engine(self._on_event, clock=self.server_time)
        self.requests: list[RequestRecord] = []
        self.ws_requests: list[dict[str, Any]] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._http_faults: list[_HttpFault] = []
        self.revoked_keys: set[str] = set()
        self._accept_faults: list[_AcceptFault] = []
        self._timestamp_faults = 0
        self.muted_user_streams: set[str] = set()
        self.unanswered_ws_api_requests = 0
        self._stream_conns: list[WsConnection] = []
        self._api_conns: list[WsConnection] = []
        self._weight_minute = 0
        self._weight_used = 0
        self._runner: web.AppRunner | None = None
        self._sleepers: set[asyncio.Task[Any]] = set()
        for spec in symbols:
            seed = DEFAULT_BOOK_SEEDS.get(spec.symbol)
            self.engine.add_symbol(spec, last_price=seed[0] if seed else Decimal(0))
            if seed and seed_books:
                mid, gap, qty = seed
                self.engine.set_book(
                    spec.symbol,
                    bids=[(mid - gap * i, qty) for i in range(1, 11)],
                    asks=[(mid + gap * i, qty) for i in range(1, 11)],
                )
        if default_account:
            self.add_account(DOC_API_KEY, DOC_SECRET, {"USDT": "100000", "BTC": "1", "ETH": "10", "BNB": "100"})

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    @asynccontextmanager
    async def start(cls, **kwargs: Any) -> AsyncIterator[FakeBinance]:
        """Serve a new fake on 127.0.0.1 (free port) for the duration of the ``async with`` block."""
        fake = cls(**kwargs)
        await fake._serve()
        try:
            yield fake
        finally:
            await fake.stop()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        for task in list(self._sleepers):
            task.cancel()
        await self.drop_connections(abrupt=False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/api/v3``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (append ``/stream`` or ``/ws``)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def ws_api_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (append ``/ws-api/v3``)."""
        return f"ws://{self.host}:{self.port}"

    def server_time(self) -> int:
        """The fake's clock in ms (wall clock + ``clock_offset_ms``)."""
        return now_ms() + self.clock_offset_ms

    # ------------------------------------------------------------------ test control
    def add_account(self, api_key: str, secret: str, balances: dict[str, Any] | None = None) -> Account:
        """Create an account; ``balances`` maps asset -> free amount (str/int/Decimal)."""
        return self.engine.add_account(api_key, secret, balances)

    def account(self, api_key: str) -> Account:
        """The account object (``free``/``locked`` dicts of Decimal)."""
        return self.engine.accounts[api_key]

    def balances(self, api_key: str) -> dict[str, tuple[Decimal, Decimal]]:
        """``{asset: (free, locked)}`` of an account."""
        acct = self.engine.accounts[api_key]
        return {a: (acct.free.get(a, Decimal(0)), acct.locked.get(a, Decimal(0))) for a in acct.assets()}

    def orders(self, api_key: str, symbol: str | None = None, *, open_only: bool = False) -> list[Order]:
        """Orders of an account, oldest first."""
        return [
            o
            for o in sorted(self.engine.orders.values(), key=lambda o: o.order_id)
            if o.api_key == api_key and (symbol is None or o.symbol == symbol) and (o.is_open or not open_only)
        ]

    def revoke_key(self, api_key: str) -> None:
        """The user deleted the key on the testnet site: every signed request with it gets -2015."""
        self.revoked_keys.add(api_key)

    def wipe(self) -> None:
        """What Spot Testnet does from time to time: every order is forgotten (accounts and balances stay)."""
        self.engine.orders.clear()

    def set_book(self, symbol: str, bids: Iterable[tuple[Any, Any]], asks: Iterable[tuple[Any, Any]]) -> None:
        """Replace the book of ``symbol``; pushes a depth diff with the next update id."""
        self.engine.set_book(symbol, bids, asks)

    def trade(self, symbol: str, price: Any, qty: Any, *, buyer_is_maker: bool = False) -> PublicTrade:
        """Print a public trade: last price moves, stops trigger, crossed resting orders fill."""
        return self.engine.print_trade(symbol, price, qty, buyer_is_maker)

    def last_price(self, symbol: str) -> Decimal:
        """Last traded price of ``symbol``."""
        return self.engine.market(symbol).last_price

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        path: str | None = None,
        code: int | None = None,
        msg: str | None = None,
        retry_after: int | None = None,
        text: str | None = None,
    ) -> None:
        """Answer the next ``count`` REST requests (optionally only to ``path``) with ``status``.

        The body is Binance's error JSON (defaults per status) unless ``text`` gives a raw body.
        The request is *not* executed.
        """
        self._http_faults.append(_HttpFault(status, count, path, code, msg, retry_after, text))

    def rate_limit_next(self, count: int = 1, *, path: str | None = None, retry_after: int = 1) -> None:
        """HTTP 429 + ``Retry-After`` + -1003 for the next ``count`` requests."""
        self.fail_next(429, count, path=path, code=-1003, msg=MSG_429, retry_after=retry_after)

    def ban_next(self, count: int = 1, *, path: str | None = None, retry_after: int = 120) -> None:
        """HTTP 418 (IP auto-banned) + ``Retry-After`` + -1003 for the next ``count`` requests."""
        until = self.server_time() + retry_after * 1000
        msg = (
            f"Way too many requests; IP(127.0.0.1) banned until {until}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        self.fail_next(418, count, path=path, code=-1003, msg=msg, retry_after=retry_after)

    def server_error_next(self, count: int = 1, *, status: int = 500, path: str | None = None) -> None:
        """5xx with Binance's error JSON for the next ``count`` requests."""
        self.fail_next(status, count, path=path)

    def timeout_after_accept(
        self, count: int = 1, *, path: str | None = "/api/v3/order", delay: float = 30.0, drop: bool = False
    ) -> None:
        """Execute the next ``count`` requests to ``path`` for real, then delay the answer by ``delay``
        seconds (client-side timeout) or, with ``drop=True``, close the connection without answering."""
        self._accept_faults.append(_AcceptFault(count, path, delay, drop))

    def server_error_after_accept(
        self, count: int = 1, *, status: int = 503, path: str | None = "/api/v3/order"
    ) -> None:
        """Execute the next ``count`` requests to ``path`` for real, then answer ``status`` with Binance's error
        JSON (503 -1008 / 504 -1007 "execution status unknown"): the order exists, the client is told it failed."""
        self._accept_faults.append(_AcceptFault(count, path, 0.0, False, status))

    def reject_timestamp_next(self, count: int = 1) -> None:
        """The next ``count`` signed calls (REST or WS-API) fail with -1021 outside recvWindow."""
        self._timestamp_faults += count

    def mute_user_stream(self, api_key: str, muted: bool = True) -> None:
        """Stop (or resume) pushing ``api_key``'s user-data events; events meanwhile are lost, not queued."""
        if muted:
            self.muted_user_streams.add(api_key)
        else:
            self.muted_user_streams.discard(api_key)

    def leave_ws_api_unanswered(self, count: int = 1) -> None:
        """The next ``count`` WebSocket-API requests are neither executed nor answered (the socket stays up and
        answers pings): a venue that hangs. They are logged in ``ws_requests`` as method ``<unanswered>``."""
        self.unanswered_ws_api_requests += count

    async def drop_connections(self, *, abrupt: bool = True) -> None:
        """Close every market-stream and WS-API connection (abruptly = TCP reset, no close frame)."""
        for conn in [*self._stream_conns, *self._api_conns]:
            if abrupt and conn.request.transport is not None:
                conn.request.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"going away")
            conn.queue.put_nowait(None)
        self._stream_conns.clear()
        self._api_conns.clear()
        await asyncio.sleep(0)

    @property
    def connection_count(self) -> int:
        """Open stream + WS-API connections."""
        return len(self._stream_conns) + len(self._api_conns)

    def _take_fault(self, faults: list[Any], path: str) -> Any:
        for fault in faults:
            if fault.remaining > 0 and (fault.path is None or fault.path == path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ HTTP plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/stream", "/ws")):
            return await handler(request)
        raw_query = request.raw_path.partition("?")[2]
        raw_body = await request.text() if request.can_read_body else ""
        pairs = parse_qsl(raw_query, keep_blank_values=True) + parse_qsl(raw_body, keep_blank_values=True)
        params = dict(pairs)
        record = RequestRecord(request.method, request.path, params, request.headers.get("X-MBX-APIKEY"))
        self.requests.append(record)
        request[PARAMS], request[RAW_QUERY], request[RAW_BODY] = params, raw_query, raw_body
        minute = self.server_time() // 60_000
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        self._weight_used += _weight(request.path, params, request.method)

        fault = self._take_fault(self._http_faults, request.path)
        if fault is not None:
            response: web.StreamResponse = self._fault_response(fault)
        else:
            try:
                if len(pairs) != len(params):
                    dup = next(k for k in params if sum(1 for p in pairs if p[0] == k) > 1)
                    raise BinanceError(-1101, f"Duplicate values for parameter '{dup}'.")
                response = await handler(request)
            except BinanceError as err:
                body: dict[str, Any] = {"code": err.code, "msg": err.msg}
                if err.data is not None:
                    body["data"] = err.data
                response = web.json_response(body, status=err.status)
            except web.HTTPException as exc:
                response = web.Response(status=exc.status, text=exc.text or "")
            accept = self._take_fault(self._accept_faults, request.path)
            if accept is not None and accept.status is not None:
                response = self._fault_response(_HttpFault(accept.status, 1, None, None, None, None))
            elif accept is not None:
                if accept.drop:
                    # The order exists now; the client never hears about it.
                    if request.transport is not None:
                        request.transport.abort()
                    raise asyncio.CancelledError
                task = asyncio.ensure_future(asyncio.sleep(accept.delay))
                self._sleepers.add(task)
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                finally:
                    self._sleepers.discard(task)
        record.status = response.status
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self._weight_used)
        if request.path.startswith("/api/v3/order") and request.method == "POST" and record.api_key:
            acct = self.engine.accounts.get(record.api_key)
            if acct is not None:
                now = self.server_time()
                response.headers["X-MBX-ORDER-COUNT-10S"] = str(sum(1 for t in acct.order_times if t > now - 10_000))
                response.headers["X-MBX-ORDER-COUNT-1D"] = str(sum(1 for t in acct.order_times if t > now - 86_400_000))
        return response

    def _fault_response(self, fault: _HttpFault) -> web.Response:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.text is not None:
            return web.Response(status=fault.status, text=fault.text, headers=headers)
        code, msg = SERVER_ERRORS.get(fault.status, (-1000, "An unknown error occurred while processing the request."))
        body = {"code": fault.code if fault.code is not None else code, "msg": fault.msg or msg}
        return web.json_response(body, status=fault.status, headers=headers)

    def _authenticate(self, api_key: str | None) -> Account:
        if not api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        account = self.engine.accounts.get(api_key)
        if account is None or api_key in self.revoked_keys:
            if not _API_KEY_FORMAT.match(api_key):
                raise BinanceError(-2014, "API-key format invalid.", 401)
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return account

    def _check_timing(self, params: dict[str, Any]) -> None:
        """Binance's timestamp/recvWindow rule (-1021), plus injected -1021 faults."""
        raw_ts = params.get("timestamp")
        if raw_ts in (None, ""):
            raise mandatory("timestamp")
        try:
            timestamp = int(str(raw_ts))
            recv_window = Decimal(str(params.get("recvWindow") or 5000))
        except (ValueError, ArithmeticError) as exc:
            raise BinanceError(-1100, "Illegal characters found in parameter 'timestamp'.") from exc
        if recv_window > 60000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = self.server_time()
        if self._timestamp_faults > 0:
            self._timestamp_faults -= 1
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        if timestamp >= now + 1000:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > recv_window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    def _signed(self, request: web.Request) -> Account:
        """Authenticate a SIGNED REST request: API key header, HMAC over query+body as sent, timing."""
        account = self._authenticate(request.headers.get("X-MBX-APIKEY"))
        query, sig_q = strip_signature(request[RAW_QUERY])
        body, sig_b = strip_signature(request[RAW_BODY])
        signature = sig_b or sig_q
        if not signature:
            raise mandatory("signature")
        # totalParams = query string concatenated with the request body (no separator).
        if not verify_signature(account.secret, query + body, signature):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        self._check_timing(request[PARAMS])
        return account

    def _add_routes(self, app: web.Application) -> None:
        get, post, delete = app.router.add_get, app.router.add_post, app.router.add_delete
        v3 = "/api/v3/"
        get(v3 + "ping", self._ping)
        get(v3 + "time", self._time)
        get(v3 + "exchangeInfo", self._exchange_info)
        get(v3 + "depth", self._depth)
        get(v3 + "trades", self._trades)
        get(v3 + "historicalTrades", self._trades)
        get(v3 + "aggTrades", self._agg_trades)
        get(v3 + "klines", self._klines)
        get(v3 + "uiKlines", self._klines)
        get(v3 + "avgPrice", self._avg_price)
        get(v3 + "ticker/24hr", self._ticker_24hr)
        get(v3 + "ticker/price", self._ticker_price)
        get(v3 + "ticker/bookTicker", self._book_ticker)
        get(v3 + "account", self._account)
        get(v3 + "account/commission", self._commission)
        get(v3 + "order", self._get_order)
        post(v3 + "order", self._new_order)
        post(v3 + "order/test", self._test_order)
        delete(v3 + "order", self._cancel_order)
        get(v3 + "openOrders", self._open_orders)
        delete(v3 + "openOrders", self._cancel_all)
        get(v3 + "allOrders", self._all_orders)
        get(v3 + "myTrades", self._my_trades)
        post(v3 + "orderList/oco", self._new_oco)
        post(v3 + "order/cancelReplace", self._cancel_replace)
        get("/stream", self._stream_ws)
        get("/stream/{tail:.*}", self._stream_ws)
        get("/ws", self._stream_ws)
        get("/ws/{tail:.*}", self._stream_ws)
        get("/ws-api/v3", self._api_ws)
