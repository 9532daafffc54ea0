"""The ccxt.pro binance client the adapter drives: spot-only sandbox pointed at configurable hosts.

One small subclass adds two hooks: failed REST/WS-API answers get their HTTP status, Retry-After and Binance error
body attached (errors.py decides on those), and raw user-data events are handed to a sink before ccxt folds them
into its caches (so no executionReport is lost when several arrive between two `watch_orders` wake-ups).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.pro as ccxtpro

from app.config import MAINNET_HOST_MARKERS
from app.venues.binance.errors import annotate

UserEventSink = Callable[[Mapping[str, Any]], None]

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
        host = urlsplit(url).hostname or ""
        if any(marker in host for marker in MAINNET_HOST_MARKERS):
            raise ValueError(f"{host} is a Binance mainnet host; Tradewind trades on testnets only")


def build_client(
    api_key: str,
    api_secret: str,
    *,
    rest_url: str,
    stream_url: str,
    ws_api_url: str,
    timeout_ms: int,
    enable_rate_limit: bool,
) -> TradewindBinance:
    """A spot-only ccxt.pro binance client: sandbox mode first (it replaces urls['api'] with the testnet URLs),
    then every URL the spot calls use is pointed at the given bases (reference §1.3)."""
    refuse_mainnet(rest_url, stream_url, ws_api_url)
    rest, stream, ws_api = rest_url.rstrip("/"), stream_url.rstrip("/"), ws_api_url.rstrip("/")
    client = TradewindBinance(
        {
            "apiKey": api_key,
            "secret": api_secret,
            "enableRateLimit": enable_rate_limit,
            "timeout": timeout_ms,
            "verbose": False,
            "logger": CCXT_LOGGER,
            "options": {
                "defaultType": "spot",
                # Spot only: no fapi/dapi exchangeInfo, no sapi currencies/margin calls (testnet has no sapi).
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": True,
            },
        }
    )
    client.set_sandbox_mode(True)
    client.urls["api"].update({"public": rest + "/api/v3", "private": rest + "/api/v3", "v1": rest + "/api/v1"})
    client.urls["api"]["ws"] = {
        "spot": stream + "/stream",
        "margin": stream + "/stream",
        "ws-api": {"spot": ws_api + "/ws-api/v3"},
    }
    return client
