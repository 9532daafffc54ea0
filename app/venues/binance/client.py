"""The one ccxt.pro binance client builder (venue adapter and live market feed): spot-only sandbox pointed at the
configured testnet hosts, behind the mainnet guard, with every wait bounded.

Bounded waits: REST calls time out after `timeout_ms` (ccxt `timeout`), a WebSocket connect after the same (at
least 1 s: ccxt rounds it down to whole seconds), and a silent WebSocket is declared dead when no pong came back for
two `keepalive_ms` ping intervals (ccxt's ping loop raises RequestTimeout). Callers bound what ccxt cannot (a
WS-API request answered never on a live socket) with `call_timeout(timeout_ms)` around the call.

One small subclass adds two hooks: failed REST/WS-API answers get their HTTP status, Retry-After and Binance error
body attached (errors.py decides on those), and raw user-data events are handed to a sink before ccxt folds them
into its caches (so no executionReport is lost when several arrive between two `watch_orders` wake-ups).
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.pro as ccxtpro

from app.config import MAINNET_HOST_MARKERS
from app.venues.binance.errors import annotate

UserEventSink = Callable[[Mapping[str, Any]], None]

DEFAULT_TIMEOUT_MS = 10_000  # one REST request, one WebSocket connect
DEFAULT_KEEPALIVE_MS = 20_000  # WebSocket ping interval; no pong for two of them = dead (ccxt's default: 180 s)

# ccxt logs every request and response at DEBUG, headers included (X-MBX-APIKEY). Give it a logger of its own that
# never emits DEBUG, so turning the root logger to DEBUG cannot put key material into the logs.
CCXT_LOGGER = logging.getLogger("app.venues.binance.ccxt")
CCXT_LOGGER.setLevel(logging.INFO)


class TradewindBinance(ccxtpro.binance):  # type: ignore[misc]  # ccxt is untyped
    """ccxt.pro binance plus the error-annotation and user-event hooks described in the module docstring."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.user_event_sink: UserEventSink | None = None

    def handle_errors(
        self,
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        headers: Any,
        body: Any,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        try:
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )
        except ccxt.BaseError as exc:
            annotate(exc, code, headers, response)
            raise

    def handle_http_status_code(self, code: Any, reason: Any, url: Any, method: Any, body: Any) -> Any:
        try:
            return super().handle_http_status_code(code, reason, url, method, body)
        except ccxt.BaseError as exc:
            annotate(exc, code, None, None)
            raise

    def handle_order_update(self, client: Any, message: Any) -> Any:
        self._to_sink(message)
        return super().handle_order_update(client, message)

    def handle_balance(self, client: Any, message: Any) -> Any:
        self._to_sink(message)
        return super().handle_balance(client, message)

    def _to_sink(self, message: Any) -> None:
        if self.user_event_sink is not None and isinstance(message, dict):
            self.user_event_sink(message)


def refuse_mainnet(*urls: str) -> None:
    """Tradewind trades on testnets only: refuse Binance mainnet hosts even if settings validation was bypassed."""
    for url in urls:
        host = (urlsplit(url).hostname or "").lower()
        if any(marker in host for marker in MAINNET_HOST_MARKERS):
            raise ValueError(f"{host} is a Binance mainnet host; Tradewind trades on testnets only")


def call_timeout(timeout_ms: int) -> float:
    """Seconds after which one adapter call (a ccxt method that may make two requests, e.g. time + exchangeInfo,
    or wait for a WS-API answer) is abandoned: twice the per-request timeout."""
    return 2 * timeout_ms / 1000


def build_client(
    api_key: str = "",
    api_secret: str = "",
    *,
    rest_url: str,
    stream_url: str,
    ws_api_url: str | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
    enable_rate_limit: bool = True,
) -> TradewindBinance:
    """A spot-only ccxt.pro binance client: sandbox mode first (it replaces urls['api'] with the testnet URLs),
    then every URL the spot calls use is pointed at the given bases (reference §1.3).

    `rest_url` is the REST base without /api/v3, `stream_url` the market-stream base without /stream, `ws_api_url`
    the WS-API base without /ws-api/v3 (default: `stream_url`). Without an API key (the market feed) no clock
    offset is fetched. Raises ValueError for a Binance mainnet host."""
    ws_api_url = ws_api_url or stream_url
    refuse_mainnet(rest_url, stream_url, ws_api_url)
    if timeout_ms <= 0 or keepalive_ms <= 0:
        raise ValueError("timeout_ms and keepalive_ms must be > 0")
    rest, stream, ws_api = rest_url.rstrip("/"), stream_url.rstrip("/"), ws_api_url.rstrip("/")
    client = TradewindBinance(
        {
            "apiKey": api_key,
            "secret": api_secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "verbose": False,
            "logger": CCXT_LOGGER,
            "streaming": {"keepAlive": keepalive_ms, "connectionTimeout": max(1000, timeout_ms)},
            "options": {
                "defaultType": "spot",
                # Spot only: no fapi/dapi exchangeInfo, no sapi currencies/margin calls (testnet has no sapi).
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": bool(api_key),
            },
        }
    )
    # One CA store for every client: ccxt builds an SSL context per client on its first request (the CA bundle
    # parsed again, ~16 ms here), and one per account adds up; verification stays ccxt's default.
    client.ssl_context = _ssl_context(client.cafile)
    # close() waits 250 ms for TLS connections to shut down (aiohttp's graceful-shutdown advice); plain-text
    # connections (a local testnet, the project's fake) need no wait, as aiohttp says for non-SSL ones.
    if all(url.startswith(("http://", "ws://")) for url in (rest, stream, ws_api)):
        client.timeout_on_exit = 0
    client.set_sandbox_mode(True)
    client.urls["api"].update({"public": rest + "/api/v3", "private": rest + "/api/v3", "v1": rest + "/api/v1"})
    client.urls["api"]["ws"] = {
        "spot": stream + "/stream",
        "margin": stream + "/stream",
        "ws-api": {"spot": ws_api + "/ws-api/v3"},
    }
    return client


@functools.cache
def _ssl_context(cafile: str) -> ssl.SSLContext:
    """What ccxt would build for a client (`ssl.create_default_context` with its CA file), built once."""
    return ssl.create_default_context(cafile=cafile)
