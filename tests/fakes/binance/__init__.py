"""Offline, protocol-faithful fake of Binance Spot (REST, market streams, WebSocket API).

Usage::

    async with FakeBinance.start() as fake:
        ex = ccxt.pro.binance(ccxt_config(fake, DOC_API_KEY, DOC_SECRET))
        ...
        fake.trade("BTCUSDT", "60010", "0.5")
"""

from .config import ccxt_config, restore_spot_error_map
from .models import (
    COMMISSION_RATE,
    DEFAULT_SYMBOLS,
    Account,
    BinanceError,
    Fill,
    Order,
    PublicTrade,
    SymbolSpec,
)
from .server import FakeBinance, RequestRecord
from .signing import DOC_API_KEY, DOC_SECRET, sign, verify_signature

__all__ = [
    "COMMISSION_RATE",
    "DEFAULT_SYMBOLS",
    "DOC_API_KEY",
    "DOC_SECRET",
    "Account",
    "BinanceError",
    "FakeBinance",
    "Fill",
    "Order",
    "PublicTrade",
    "RequestRecord",
    "SymbolSpec",
    "ccxt_config",
    "restore_spot_error_map",
    "sign",
    "verify_signature",
]
