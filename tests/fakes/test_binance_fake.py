"""Tests of the fake Binance Spot exchange itself, mostly through real ccxt / ccxt.pro."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest
import pytest_asyncio
import websockets

from .binance import DOC_API_KEY, DOC_SECRET, FakeBinance, ccxt_config, sign, verify_signature

pytestmark = pytest.mark.asyncio

BTC = "BTC/USDT"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        yield server


@pytest_asyncio.fixture
async def ex(fake: FakeBinance) -> AsyncIterator[Any]:
    client = ccxtpro.binance(ccxt_config(fake))
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


async def raw_request(
    fake: FakeBinance,
    method: str,
    path: str,
    query: str = "",
    body: str = "",
    api_key: str | None = DOC_API_KEY,
) -> tuple[int, dict[str, str], Any]:
    headers = {"X-MBX-APIKEY": api_key} if api_key else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    url = f"{fake.rest_url}{path}" + (f"?{query}" if query else "")
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body or None, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def signed_query(params: str, secret: str = DOC_SECRET) -> str:
    return f"{params}&signature={sign(secret, params)}"


async def next_with_timeout(coro: Any, timeout: float = 3.0) -> Any:
    return await asyncio.wait_for(coro, timeout)


# ---------------------------------------------------------------- signing and auth


async def test_binance_documentation_hmac_vectors() -> None:
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert sign(DOC_SECRET, payload) == expected
    assert verify_signature(DOC_SECRET, payload, expected.upper())  # HMAC signatures are case-insensitive
    assert not verify_signature(DOC_SECRET, payload + "0", expected)
    # ccxt-shaped vectors from the reference (same keys).
    account = "timestamp=1499827319559&recvWindow=5000"
    assert sign(DOC_SECRET, account) == "6cd35332399b004466463b9ad65a112a14f31fb9ddfd5e19bd7298fbd491dbc7"
    ws_payload = f"apiKey={DOC_API_KEY}&recvWindow=5000&timestamp=1499827319559"
    assert sign(DOC_SECRET, ws_payload) == "e272787f858fe175d42f29d9b855d65a49dddfccb3f79f6ff5f8827b5208545d"


async def test_auth_errors_are_binance_shaped(fake: FakeBinance) -> None:
    now = fake.server_time()
    good = signed_query(f"timestamp={now}&recvWindow=5000")
    status, headers, body = await raw_request(fake, "GET", "/api/v3/account", good)
    assert status == 200 and body["accountType"] == "SPOT"
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 20

    bad = f"timestamp={now}&recvWindow=5000&signature={'0' * 64}"
    status, _, body = await raw_request(fake, "GET", "/api/v3/account", bad)
    assert (status, body) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})

    stale = signed_query(f"timestamp={now - 60_000}&recvWindow=5000")
    status, _, body = await raw_request(fake, "GET", "/api/v3/account", stale)
    assert (status, body["code"]) == (400, -1021)
    assert body["msg"] == "Timestamp for this request is outside of the recvWindow."

    ahead = signed_query(f"timestamp={now + 5_000}")
    status, _, body = await raw_request(fake, "GET", "/api/v3/account", ahead)
    assert body["code"] == -1021 and "ahead" in body["msg"]

    status, _, body = await raw_request(fake, "GET", "/api/v3/account", good, api_key="x" * 64)
    assert (status, body["code"]) == (401, -2015)
    status, _, body = await raw_request(fake, "GET", "/api/v3/account", good, api_key="short")
    assert (status, body["code"]) == (401, -2014)


async def test_signature_over_query_concatenated_with_body(fake: FakeBinance) -> None:
    # Binance signs totalParams = query string + request body, concatenated without '&'.
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=0.001&price=50000&recvWindow=5000&timestamp={fake.server_time()}"
    signature = sign(DOC_SECRET, query + body)
    status, headers, order = await raw_request(fake, "POST", "/api/v3/order", query, f"{body}&signature={signature}")
    assert status == 200, order
    assert order["status"] == "NEW" and order["origQty"] == "0.00100000" and order["fills"] == []
    assert headers["X-MBX-ORDER-COUNT-10S"] == "1"
    # Unknown symbol / unknown order on GET -> real Binance codes.
    status, _, err = await raw_request(
        fake, "GET", "/api/v3/order", signed_query(f"symbol=NOPE&orderId=1&timestamp={fake.server_time()}")
    )
    assert (status, err) == (400, {"code": -1121, "msg": "Invalid symbol."})
    _, _, err = await raw_request(
        fake, "GET", "/api/v3/order", signed_query(f"symbol=BTCUSDT&orderId=1&timestamp={fake.server_time()}")
    )
    assert err == {"code": -2013, "msg": "Order does not exist."}


async def test_response_types_and_order_test(fake: FakeBinance) -> None:
    ts = fake.server_time()
    base = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001"
    _, _, ack = await raw_request(
        fake, "POST", "/api/v3/order", body=signed_query(f"{base}&newOrderRespType=ACK&timestamp={ts}")
    )
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    _, _, result = await raw_request(
        fake, "POST", "/api/v3/order", body=signed_query(f"{base}&newOrderRespType=RESULT&timestamp={ts}")
    )
    assert result["status"] == "FILLED" and "fills" not in result
    _, _, full = await raw_request(fake, "POST", "/api/v3/order", body=signed_query(f"{base}&timestamp={ts}"))
    assert full["fills"][0] == {
        "price": "60010.00000000",
        "qty": "0.00100000",
        "commission": "0.00000100",
        "commissionAsset": "BTC",
        "tradeId": full["fills"][0]["tradeId"],
    }
    status, _, body = await raw_request(fake, "POST", "/api/v3/order/test", body=signed_query(f"{base}&timestamp={ts}"))
    assert (status, body) == (200, {})
    assert len(fake.orders(DOC_API_KEY)) == 3


# ---------------------------------------------------------------- REST through ccxt


async def test_markets_balance_and_market_orders(fake: FakeBinance, ex: Any) -> None:
    market = ex.market(BTC)
    assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0
    balance = await ex.fetch_balance()
    assert balance["USDT"]["free"] == 100000.0 and balance["BTC"]["total"] == 1.0

    # Walks two ask levels: 1.0 @ 60010 + 0.5 @ 60020 = 90020 USDT, fee 0.1% in BTC.
    order = await ex.create_order(BTC, "market", "buy", 1.5)
    assert order["status"] == "closed" and order["filled"] == 1.5
    assert order["cost"] == 90020.0 and len(order["trades"]) == 2
    free_btc, locked_btc = fake.balances(DOC_API_KEY)["BTC"]
    assert free_btc == Decimal("1") + Decimal("1.5") - Decimal("0.0015") and locked_btc == 0
    assert fake.balances(DOC_API_KEY)["USDT"] == (Decimal("100000") - Decimal("90020"), Decimal(0))
    assert fake.last_price("BTCUSDT") == Decimal("60020")

    # quoteOrderQty: spend 100 USDT at 60020 -> 0.00166 BTC (rounded down to stepSize).
    by_cost = await ex.create_market_buy_order_with_cost(BTC, 100)
    assert by_cost["filled"] == 0.00166 and by_cost["status"] == "closed"
    assert fake.requests[-1].params["quoteOrderQty"] == "100"

    sold = await ex.create_order(BTC, "market", "sell", 0.1)
    assert sold["average"] == 59990.0 and sold["fee"] == {"currency": "USDT", "cost": 5.999}


async def test_limit_lifecycle_by_client_order_id(fake: FakeBinance, ex: Any) -> None:
    order = await ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "my-cid-1"})
    assert order["status"] == "open" and order["clientOrderId"] == "my-cid-1"
    assert fake.balances(DOC_API_KEY)["USDT"][1] == Decimal("590")

    fetched = await ex.fetch_order(None, BTC, {"origClientOrderId": "my-cid-1"})
    assert fetched["id"] == order["id"] and fetched["status"] == "open"
    assert [o["id"] for o in await ex.fetch_open_orders(BTC)] == [order["id"]]

    with pytest.raises(ccxt_async.InvalidOrder, match="Duplicate order sent"):
        await ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "my-cid-1"})

    canceled = await ex.cancel_order(order["id"], BTC)
    assert canceled["status"] == "canceled"
    assert canceled["info"]["origClientOrderId"] == "my-cid-1"  # Binance quirk: clientOrderId is the cancel's id
    assert fake.balances(DOC_API_KEY)["USDT"] == (Decimal("100000"), Decimal(0))
    with pytest.raises(ccxt_async.OrderNotFound):
        await ex.cancel_order(order["id"], BTC)
    with pytest.raises(ccxt_async.OrderNotFound):
        await ex.fetch_order("999999", BTC)


async def test_ioc_fok_and_limit_maker(fake: FakeBinance, ex: Any) -> None:
    fake.account(DOC_API_KEY).free["USDT"] = Decimal("1000000")
    ioc = await ex.create_order(BTC, "limit", "buy", 1.5, 60010, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ioc["filled"] == 1.0
    assert fake.balances(DOC_API_KEY)["USDT"][1] == 0  # remainder's lock released

    fok = await ex.create_order(BTC, "limit", "buy", 5, 60030, {"timeInForce": "FOK"})
    assert fok["status"] == "expired" and fok["filled"] == 0
    fok_ok = await ex.create_order(BTC, "limit", "buy", 1.5, 60030, {"timeInForce": "FOK"})
    assert fok_ok["status"] == "closed" and fok_ok["filled"] == 1.5

    with pytest.raises(ccxt_async.OrderImmediatelyFillable):
        await ex.create_order(BTC, "limit", "buy", 0.01, 70000, {"postOnly": True})
    maker = await ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"postOnly": True})
    assert maker["status"] == "open" and maker["info"]["type"] == "LIMIT_MAKER"


async def test_stop_limit_triggers_on_last_price(fake: FakeBinance, ex: Any) -> None:
    with pytest.raises(ccxt_async.OrderImmediatelyFillable):  # -2010 "Order would trigger immediately."
        await ex.create_order(BTC, "limit", "sell", 0.1, 61000, {"stopLossPrice": 60500})
    stop = await ex.create_order(BTC, "limit", "sell", 0.1, 59900, {"stopLossPrice": 59950})
    assert stop["status"] == "open" and stop["info"]["type"] == "STOP_LOSS_LIMIT"
    assert fake.balances(DOC_API_KEY)["BTC"] == (Decimal("0.9"), Decimal("0.1"))

    fake.trade("BTCUSDT", "59960", "0.01")  # above the stop: nothing happens
    assert (await ex.fetch_order(stop["id"], BTC))["status"] == "open"
    fake.trade("BTCUSDT", "59950", "0.01")  # last <= stopPrice: becomes a limit sell at 59900, fills on bids
    done = await ex.fetch_order(stop["id"], BTC)
    assert done["status"] == "closed" and done["filled"] == 0.1 and done["triggerPrice"] == 59950.0
    assert fake.balances(DOC_API_KEY)["USDT"][0] == Decimal("100000") + Decimal("5999") - Decimal("5.999")

    market_stop = await ex.create_order(BTC, "market", "buy", 0.01, None, {"stopLossPrice": 60500})
    assert market_stop["info"]["type"] == "STOP_LOSS"
    fake.trade("BTCUSDT", "60600", "0.01")
    assert (await ex.fetch_order(market_stop["id"], BTC))["status"] == "closed"


async def test_resting_limit_partially_filled_by_public_trade(fake: FakeBinance, ex: Any) -> None:
    order = await ex.create_order(BTC, "limit", "sell", 0.5, 60100)
    fake.trade("BTCUSDT", "60100", "0.2")
    partial = await ex.fetch_order(order["id"], BTC)
    assert partial["status"] == "open" and partial["filled"] == 0.2 and partial["remaining"] == 0.3
    fake.trade("BTCUSDT", "60150", "1")
    assert (await ex.fetch_order(order["id"], BTC))["status"] == "closed"

    trades = await ex.fetch_my_trades(BTC)
    assert [t["amount"] for t in trades] == [0.2, 0.3]
    assert all(t["takerOrMaker"] == "maker" and t["price"] == 60100.0 for t in trades)
    assert fake.balances(DOC_API_KEY)["BTC"] == (Decimal("0.5"), Decimal(0))

    await ex.create_order(BTC, "limit", "buy", 0.01, 59000)
    await ex.create_order(BTC, "limit", "buy", 0.01, 58000)
    canceled = await ex.cancel_all_orders(BTC)
    assert len(canceled) == 2 and not await ex.fetch_open_orders(BTC)
    orders = await ex.fetch_orders(BTC)
    assert [o["status"] for o in orders] == ["closed", "canceled", "canceled"]


async def test_oco_order_list(fake: FakeBinance, ex: Any) -> None:
    resp = await ex.private_post_orderlist_oco(
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "quantity": "0.1",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": "61000",
            "belowType": "STOP_LOSS_LIMIT",
            "belowPrice": "58900",
            "belowStopPrice": "59000",
            "belowTimeInForce": "GTC",
            "newOrderRespType": "RESULT",
        }
    )
    assert resp["contingencyType"] == "OCO" and len(resp["orderReports"]) == 2
    assert fake.balances(DOC_API_KEY)["BTC"] == (Decimal("0.9"), Decimal("0.1"))  # one shared reservation
    fake.trade("BTCUSDT", "61000", "1")  # limit-maker leg fills, stop leg expires
    statuses = sorted(o.status for o in fake.orders(DOC_API_KEY))
    assert statuses == ["EXPIRED", "FILLED"]
    assert fake.balances(DOC_API_KEY)["BTC"] == (Decimal("0.9"), Decimal(0))


async def test_error_mapping(fake: FakeBinance, ex: Any) -> None:
    with pytest.raises(ccxt_async.InsufficientFunds):
        await ex.create_order(BTC, "limit", "buy", 5, 50000)
    with pytest.raises(ccxt_async.InvalidOrder, match="LOT_SIZE"):
        await ex.create_order(BTC, "limit", "buy", 10000, 50000)
    with pytest.raises(ccxt_async.BadRequest, match="NOTIONAL"):
        await ex.create_order(BTC, "limit", "buy", 0.00001, 50000)
    assert fake.requests[-1].status == 400

    fake.rate_limit_next(path="/api/v3/account", retry_after=7)
    with pytest.raises(ccxt_async.DDoSProtection):  # 429 -> DDoSProtection (sibling of RateLimitExceeded)
        await ex.fetch_balance()
    assert ex.last_response_headers["Retry-After"] == "7"
    fake.ban_next()
    with pytest.raises(ccxt_async.DDoSProtection, match="banned"):
        await ex.fetch_balance()
    fake.server_error_next(status=500)  # {"code": -1000, ...}
    with pytest.raises(ccxt_async.OperationFailed):
        await ex.fetch_balance()
    fake.fail_next(503, text="Service Unavailable.")  # non-JSON gateway answer
    with pytest.raises(ccxt_async.ExchangeNotAvailable):
        await ex.fetch_balance()
    fake.reject_timestamp_next()
    with pytest.raises(ccxt_async.InvalidNonce):
        await ex.fetch_balance()
    assert (await ex.fetch_balance())["BTC"]["free"] == 1.0
    assert [r.status for r in fake.requests[-6:]] == [429, 418, 500, 503, 400, 200]
    assert all(r.api_key == DOC_API_KEY and r.path == "/api/v3/account" for r in fake.requests[-6:])


async def test_timeout_after_accept_creates_the_order(fake: FakeBinance) -> None:
    client = ccxt_async.binance(ccxt_config(fake, timeout_ms=300))
    try:
        await client.load_markets()
        fake.timeout_after_accept(delay=2.0)
        with pytest.raises(ccxt_async.RequestTimeout):
            await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "lost-1"})
        fake.timeout_after_accept(drop=True)
        with pytest.raises(ccxt_async.NetworkError):
            await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "lost-2"})
        # Both orders really exist: the client can recover them by client order id.
        for cid in ("lost-1", "lost-2"):
            found = await client.fetch_order(None, BTC, {"origClientOrderId": cid})
            assert found["status"] == "open"
    finally:
        await client.close()


# ---------------------------------------------------------------- market streams


async def test_watch_ticker_trades_and_order_book(fake: FakeBinance, ex: Any) -> None:
    ticker_task = asyncio.ensure_future(ex.watch_ticker(BTC, {"name": "ticker"}))
    trades_task = asyncio.ensure_future(ex.watch_trades(BTC))
    book = await next_with_timeout(ex.watch_order_book(BTC))
    assert book["bids"][0] == [59990.0, 1.0] and book["asks"][0] == [60010.0, 1.0]
    snapshot_nonce = book["nonce"]
    await asyncio.sleep(0.2)  # let the SUBSCRIBE acks arrive

    fake.trade("BTCUSDT", "60005", "0.25")
    ticker = await next_with_timeout(ticker_task)
    assert ticker["last"] == 60005.0 and ticker["bid"] == 59990.0 and ticker["ask"] == 60010.0
    trades = await next_with_timeout(trades_task)
    assert trades[-1]["price"] == 60005.0 and trades[-1]["amount"] == 0.25

    fake.set_book("BTCUSDT", bids=[("59995", "2")], asks=[("60000", "3")])
    book = await next_with_timeout(ex.watch_order_book(BTC))
    assert book["nonce"] == snapshot_nonce + 1
    assert book["bids"][0] == [59995.0, 2.0] and book["asks"][0] == [60000.0, 3.0] and len(book["asks"]) == 1
    await ex.create_order(BTC, "market", "buy", 1)  # consuming liquidity is a depth diff too
    book = await next_with_timeout(ex.watch_order_book(BTC))
    assert book["nonce"] == snapshot_nonce + 2 and book["asks"][0] == [60000.0, 2.0]

    ohlcv_task = asyncio.ensure_future(ex.watch_ohlcv(BTC, "1m"))
    await asyncio.sleep(0.2)
    fake.trade("BTCUSDT", "60100", "0.5")
    candles = await next_with_timeout(ohlcv_task)
    assert candles[-1][4] == 60100.0 and candles[-1][2] == 60100.0


async def test_raw_combined_stream_and_depth_ids(fake: FakeBinance) -> None:
    async with websockets.connect(f"{fake.stream_url}/stream?streams=btcusdt@depth@100ms") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 7}))
        assert json.loads(await ws.recv()) == {"result": None, "id": 7}
        start = fake.engine.market("BTCUSDT").update_id
        fake.trade("BTCUSDT", "60000", "0.1")
        fake.set_book("BTCUSDT", bids=[("59000", "1")], asks=[("61000", "1")])
        fake.set_book("BTCUSDT", bids=[("59000", "2")], asks=[("61000", "1")])
        trade = json.loads(await ws.recv())
        assert trade["stream"] == "btcusdt@trade"
        assert set(trade["data"]) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
        first, second = json.loads(await ws.recv())["data"], json.loads(await ws.recv())["data"]
        assert (first["U"], first["u"], second["U"], second["u"]) == (start + 1, start + 1, start + 2, start + 2)
        assert second["b"] == [["59000.00000000", "2.00000000"]] and second["a"] == []
        _, _, depth = await raw_request(fake, "GET", "/api/v3/depth", "symbol=BTCUSDT&limit=5")
        assert depth["lastUpdateId"] == second["u"]


async def test_dropped_stream_reconnects(fake: FakeBinance, ex: Any) -> None:
    first = asyncio.ensure_future(ex.watch_trades(BTC))
    await asyncio.sleep(0.2)
    fake.trade("BTCUSDT", "60000", "0.1")
    await next_with_timeout(first)

    pending = asyncio.ensure_future(ex.watch_trades(BTC))
    await asyncio.sleep(0.1)
    await fake.drop_connections()
    with pytest.raises(ccxt_async.NetworkError):
        await next_with_timeout(pending)
    assert fake.connection_count == 0

    again = asyncio.ensure_future(ex.watch_trades(BTC))  # ccxt.pro dials and re-subscribes
    for _ in range(30):
        await asyncio.sleep(0.05)
        if fake.connection_count:
            break
    await asyncio.sleep(0.2)
    fake.trade("BTCUSDT", "60001", "0.2")
    trades = await next_with_timeout(again)
    assert trades[-1]["price"] == 60001.0


# ---------------------------------------------------------------- WebSocket API user data


async def test_ccxt_watch_orders_and_balance_via_ws_api(fake: FakeBinance, ex: Any) -> None:
    orders_task = asyncio.ensure_future(ex.watch_orders(BTC))
    await asyncio.sleep(0.3)
    assert fake.ws_requests[0]["method"] == "userDataStream.subscribe.signature"
    balance_task = asyncio.ensure_future(ex.watch_balance())
    await asyncio.sleep(0.1)
    order = await ex.create_order(BTC, "limit", "buy", 0.01, 59000)
    orders = await next_with_timeout(orders_task)
    assert orders[-1]["id"] == order["id"] and orders[-1]["status"] == "open"
    balance = await next_with_timeout(balance_task)
    assert balance["USDT"]["used"] == 590.0

    trades_task = asyncio.ensure_future(ex.watch_my_trades(BTC))
    await asyncio.sleep(0.1)
    fake.trade("BTCUSDT", "58990", "1")
    my_trades = await next_with_timeout(trades_task)
    assert my_trades[-1]["order"] == order["id"] and my_trades[-1]["takerOrMaker"] == "maker"
    assert ex.orders[-1]["status"] == "closed"


async def test_raw_ws_api_subscription_and_execution_report(fake: FakeBinance) -> None:
    async with websockets.connect(f"{fake.ws_api_url}/ws-api/v3") as ws:
        params: dict[str, Any] = {"apiKey": DOC_API_KEY, "timestamp": fake.server_time(), "recvWindow": 5000}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        await ws.send(
            json.dumps(
                {
                    "id": "bad",
                    "method": "userDataStream.subscribe.signature",
                    "params": {**params, "signature": "0" * 64},
                }
            )
        )
        bad = json.loads(await ws.recv())
        assert bad["status"] == 400 and bad["error"] == {
            "code": -1022,
            "msg": "Signature for this request is not valid.",
        }
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "method": "userDataStream.subscribe.signature",
                    "params": {**params, "signature": sign(DOC_SECRET, payload)},
                }
            )
        )
        ok = json.loads(await ws.recv())
        assert ok["id"] == "1" and ok["status"] == 200 and ok["result"] == {"subscriptionId": 0}

        ts = fake.server_time()
        body = signed_query(f"symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.2&newClientOrderId=cid-9&timestamp={ts}")
        await raw_request(fake, "POST", "/api/v3/order", body=body)
        events = [json.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(3)]
        assert all(e["subscriptionId"] == 0 for e in events)
        new, trade, position = (e["event"] for e in events)
        assert (new["e"], new["x"], new["X"], new["c"]) == ("executionReport", "NEW", "NEW", "cid-9")
        required = set(
            [
                "e",
                "E",
                "s",
                "c",
                "S",
                "o",
                "f",
                "q",
                "p",
                "P",
                "F",
                "g",
                "C",
                "x",
                "X",
                "r",
                "i",
                "l",
                "z",
                "L",
                "n",
                "N",
                "T",
                "t",
                "I",
                "w",
                "m",
                "M",
                "O",
                "Z",
                "Y",
                "Q",
                "V",
            ]
        )
        assert required <= set(trade)
        assert (trade["x"], trade["X"], trade["l"], trade["L"], trade["N"]) == (
            "TRADE",
            "FILLED",
            "0.20000000",
            "59990.00000000",
            "USDT",
        )
        assert trade["n"] == "11.99800000" and trade["Z"] == "11998.00000000" and trade["m"] is False
        assert position["e"] == "outboundAccountPosition"
        assert {b["a"]: b["f"] for b in position["B"]} == {"BTC": "0.80000000", "USDT": "111986.00200000"}

        await ws.send(json.dumps({"id": 2, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 0}}))
        assert json.loads(await ws.recv())["result"] == {}
        await ws.send(json.dumps({"id": 3, "method": "session.status"}))
        assert json.loads(await ws.recv())["result"]["userDataStream"] is False


async def test_runtime_budget_sanity() -> None:
    # Guard against accidental sleeps in the fake: starting and stopping must be fast.
    start = time.monotonic()
    async with FakeBinance.start() as server:
        assert server.rest_url.startswith("http://127.0.0.1:")
    assert time.monotonic() - start < 2
