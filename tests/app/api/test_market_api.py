"""/api/market/*: exact shapes per API.md, symbol normalisation, and the error shape for bad input (no auth)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from app.api import mount_api
from app.config import load_settings
from app.ids import now_ms
from app.market.intervals import FIRST_MONDAY_MS, INTERVAL_MS
from app.market.models import Depth, Interval, Trade
from app.services import STALE_AFTER_MS, Services, build_services

BTC = "BTCUSDT"
ENDPOINTS = ("ticker", "candles", "depth", "trades")
TICKER_KEYS = {
    "symbol",
    "price",
    "bid",
    "ask",
    "open_24h",
    "high_24h",
    "low_24h",
    "volume_24h",
    "change_24h_pct",
    "ts",
}


def decimal_string(value: Any) -> Decimal:
    """API.md: money and quantities are decimal strings (plain notation)."""
    assert isinstance(value, str) and "e" not in value.lower(), value
    return Decimal(value)


def assert_error(response: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code and body["error"]["field"] == field
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.fixture
def market(services: object) -> Services:
    return cast(Services, services)


def publish_known_book(services: Services, ts: int) -> Depth:
    depth = Depth(
        BTC,
        bids=((Decimal("70000.01"), Decimal("0.5")), (Decimal("69999.5"), Decimal("1.25"))),
        asks=((Decimal("70000.02"), Decimal("0.00001")), (Decimal("70001"), Decimal("3"))),
        ts=ts,
    )
    services.market.apply_depth(depth)
    return depth


async def test_symbols_lists_every_configured_symbol_with_its_filters(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/market/symbols")
    assert response.status_code == 200
    rows = response.json()
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    for row in rows:
        assert set(row) == {"symbol", "base", "quote", "tick_size", "step_size", "min_qty", "min_notional"}
        for key in ("tick_size", "step_size", "min_qty", "min_notional"):
            assert decimal_string(row[key]) > 0
    assert rows[0] == {
        "symbol": "BTCUSDT",
        "base": "BTC",
        "quote": "USDT",
        "tick_size": "0.01",
        "step_size": "0.00001",
        "min_qty": "0.00001",
        "min_notional": "5",
    }
    assert (rows[4]["base"], rows[4]["tick_size"], rows[4]["step_size"]) == ("XRP", "0.0001", "0.1")


async def test_ticker_shape_and_exact_values(client: httpx.AsyncClient, market: Services) -> None:
    ts = now_ms() + 1000
    publish_known_book(market, ts)
    market.market.apply_trade(Trade(BTC, Decimal("70000.02"), Decimal("0.003"), "BUY", ts))

    response = await client.get("/api/market/ticker/BTCUSDT")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == TICKER_KEYS
    assert (body["symbol"], body["price"], body["bid"], body["ask"], body["ts"]) == (
        BTC,
        "70000.02",
        "70000.01",
        "70000.02",
        ts,
    )
    low, high = decimal_string(body["low_24h"]), decimal_string(body["high_24h"])
    assert low <= decimal_string(body["open_24h"]) <= high and high >= Decimal("70000.02")
    assert decimal_string(body["volume_24h"]) > 0
    change = decimal_string(body["change_24h_pct"])
    assert change == change.quantize(Decimal("0.01"))


async def test_candles_default_to_500_one_minute_candles_oldest_first(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/market/candles/BTCUSDT")
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 500
    for row in rows:
        assert set(row) == {"t", "o", "h", "l", "c", "v"} and isinstance(row["t"], int)
        o, h, l, c, v = (decimal_string(row[k]) for k in "ohlcv")  # noqa: E741
        assert l <= min(o, c) and h >= max(o, c) and v >= 0
    assert all(b["t"] - a["t"] == 60_000 for a, b in itertools.pairwise(rows))


@pytest.mark.parametrize("interval", list(Interval))
async def test_candles_per_interval_are_aligned_and_limited(client: httpx.AsyncClient, interval: Interval) -> None:
    response = await client.get(f"/api/market/candles/{BTC}", params={"interval": interval.value, "limit": 7})
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 7
    size = INTERVAL_MS[interval]
    origin = FIRST_MONDAY_MS if interval is Interval.W1 else 0  # weeks open on Monday 00:00 UTC
    assert all((row["t"] - origin) % size == 0 for row in rows)
    assert [b["t"] - a["t"] for a, b in itertools.pairwise(rows)] == [size] * 6


async def test_the_live_candle_follows_the_last_trade(client: httpx.AsyncClient, market: Services) -> None:
    ts = now_ms() + 1000
    market.market.apply_trade(Trade(BTC, Decimal("12345.67"), Decimal("0.5"), "SELL", ts))
    rows = (await client.get(f"/api/market/candles/{BTC}", params={"interval": "1m", "limit": 1})).json()
    assert rows[0]["t"] == ts - ts % 60_000 and rows[0]["c"] == "12345.67" and rows[0]["l"] == "12345.67"


async def test_depth_shape_exact_levels_and_limit(client: httpx.AsyncClient, market: Services) -> None:
    ts = now_ms() + 1000
    publish_known_book(market, ts)

    body = (await client.get(f"/api/market/depth/{BTC}")).json()
    assert body == {
        "symbol": BTC,
        "bids": [["70000.01", "0.5"], ["69999.5", "1.25"]],
        "asks": [["70000.02", "0.00001"], ["70001", "3"]],
        "ts": ts,
    }
    top = (await client.get(f"/api/market/depth/{BTC}", params={"limit": 1})).json()
    assert (top["bids"], top["asks"]) == ([["70000.01", "0.5"]], [["70000.02", "0.00001"]])


async def test_trades_newest_first_with_exact_values(client: httpx.AsyncClient, market: Services) -> None:
    ts = now_ms() + 1000
    for i in range(60):
        market.market.apply_trade(Trade(BTC, Decimal(70100 + i), Decimal("1"), "BUY", ts - 100 + i))
    market.market.apply_trade(Trade(BTC, Decimal("70000.01"), Decimal("0.25"), "SELL", ts))
    market.market.apply_trade(Trade(BTC, Decimal("70000.02"), Decimal("0.00001"), "BUY", ts + 5))

    default = (await client.get(f"/api/market/trades/{BTC}")).json()
    assert len(default) == 50
    rows = (await client.get(f"/api/market/trades/{BTC}", params={"limit": 2})).json()
    assert rows == [
        {"price": "70000.02", "qty": "0.00001", "side": "BUY", "ts": ts + 5},
        {"price": "70000.01", "qty": "0.25", "side": "SELL", "ts": ts},
    ]
    for row in default:
        assert set(row) == {"price", "qty", "side", "ts"} and row["side"] in ("BUY", "SELL")


async def test_unknown_symbol_is_a_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    for endpoint in ENDPOINTS:
        for raw in ("DOGEUSDT", "BTC", "%20"):
            assert_error(await client.get(f"/api/market/{endpoint}/{raw}"), 404, "UNKNOWN_SYMBOL", "symbol")


async def test_symbol_input_is_normalised(client: httpx.AsyncClient) -> None:
    for endpoint in ENDPOINTS:
        for raw in ("btcusdt", "BTC-USDT", "Btc-Usdt"):
            response = await client.get(f"/api/market/{endpoint}/{raw}")
            assert response.status_code == 200, (endpoint, raw, response.text)
            if endpoint in ("ticker", "depth"):
                assert response.json()["symbol"] == BTC


async def test_slash_symbol_in_a_path_is_normalised(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/market/ticker/BTC%2FUSDT")
    assert response.status_code == 200 and response.json()["symbol"] == BTC


async def test_bad_limit_is_a_422_in_the_error_shape(client: httpx.AsyncClient) -> None:
    for endpoint in ("candles", "depth", "trades"):
        for limit in ("0", "-1", "1001", "abc", "1.5", ""):
            response = await client.get(f"/api/market/{endpoint}/{BTC}", params={"limit": limit})
            assert_error(response, 422, "VALIDATION_ERROR", "limit")
        for limit in ("1", "1000"):  # the bounds themselves are allowed
            response = await client.get(f"/api/market/{endpoint}/{BTC}", params={"limit": limit})
            assert response.status_code == 200, (endpoint, response.text)


async def test_bad_interval_is_a_422_in_the_error_shape(client: httpx.AsyncClient) -> None:
    for interval in ("2m", "1M", "1W", "60", "", "1m "):
        response = await client.get(f"/api/market/candles/{BTC}", params={"interval": interval})
        assert_error(response, 422, "VALIDATION_ERROR", "interval")


async def test_market_reads_need_no_token_and_ignore_a_bad_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/market/symbols", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 200


# ---- /health: market data freshness ----------------------------------------------------------------------------


class ManualClock:
    """MarketState's injected clock: time moves only when the test says so (no sleeping)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_health_reports_market_data_stale_after_10_s_without_a_tick(database_url: str) -> None:
    clock = ManualClock(now_ms())
    services = build_services(load_settings(), migrate=False, market_clock=clock)
    assert services.simulator is not None  # simulated by default; its start-up backfill counts as a tick
    app = FastAPI()
    app.state.services = services
    mount_api(app)

    async def market_data() -> str:
        response = await client.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert (
            set(body) == {"status", "db", "market_data", "execution", "version", "replica", "partitions"}
            and body["status"] == "ok"
        )
        return str(body["market_data"])

    await services.engine.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            assert await market_data() == "ok"
            clock.now += STALE_AFTER_MS
            assert STALE_AFTER_MS == 10_000 and await market_data() == "ok"  # exactly 10 s: not yet
            clock.now += 1
            assert await market_data() == "stale"
            services.simulator.step()  # a tick arrives
            assert await market_data() == "ok"
            clock.now += 60_000
            assert await market_data() == "stale"
            services.market.apply_depth(Depth(BTC, (), (), now_ms()))  # any update of any symbol is a tick
            assert await market_data() == "ok"
    finally:
        await services.stop()
