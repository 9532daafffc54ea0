"""ccxt configuration recipe pointing ``binance`` (async / pro) at a running :class:`FakeBinance`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .signing import DOC_API_KEY, DOC_SECRET

if TYPE_CHECKING:
    from .server import FakeBinance


def ccxt_config(
    fake: FakeBinance,
    api_key: str = DOC_API_KEY,
    secret: str = DOC_SECRET,
    *,
    enable_rate_limit: bool = False,
    timeout_ms: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ccxt ``binance`` constructor dict pointing sandbox mode at ``fake`` (the reference's recipe §1.3).

    Sandbox copies ``urls['test']`` into ``urls['api']``, so the override goes into ``urls.test``.
    ``fetchMarkets: spot`` avoids testnet fapi/dapi exchangeInfo; ``fetchCurrencies``/``fetchMargins``
    off avoid sapi calls. Works for ``ccxt.async_support.binance`` and ``ccxt.pro.binance``.
    """
    http, ws = fake.rest_url, fake.stream_url
    opts: dict[str, Any] = {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    }
    opts.update(options or {})
    config: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "sandbox": True,
        "enableRateLimit": enable_rate_limit,
        "urls": {
            "test": {
                "public": http + "/api/v3",
                "private": http + "/api/v3",
                "v1": http + "/api/v1",
                "ws": {
                    "spot": ws + "/stream",
                    "margin": ws + "/stream",
                    "ws-api": {"spot": fake.ws_api_url + "/ws-api/v3"},
                },
            }
        },
        "options": opts,
    }
    if timeout_ms is not None:
        config["timeout"] = timeout_ms
    return config


def restore_spot_error_map(exchange: Any) -> None:
    """ccxt only applies its spot-specific error map to binance.com/testnet URLs; apply it for the fake too."""
    exchange.exceptions["exact"] = exchange.extend(exchange.exceptions["exact"], exchange.exceptions["spot"]["exact"])
