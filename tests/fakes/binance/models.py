"""Data model of the fake Binance Spot exchange: symbols/filters, accounts, orders, fills, trades.

Every JSON shape rendered here uses Binance's real field names and 8-decimal strings.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

D0 = Decimal(0)
EIGHT = Decimal("0.00000001")
COMMISSION_RATE = Decimal("0.001")
STP_MODE = "EXPIRE_MAKER"  # testnet default selfTradePreventionMode

ORDER_TYPES = (
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")

INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
WOULD_TAKE = "Order would immediately match and take."
WOULD_TRIGGER = "Order would trigger immediately."

# Interval -> length in ms (1M is calendar based on Binance and not supported here).
INTERVALS_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}


def fmt(value: Decimal) -> str:
    """Render a decimal the way Binance does: always 8 fractional digits (``"0.00100000"``)."""
    return f"{value.quantize(EIGHT):f}"


def now_ms() -> int:
    """Wall-clock time in milliseconds."""
    return int(time.time() * 1000)


def random_client_id() -> str:
    """A 22-character id like the ones Binance generates for ``clientOrderId``."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(22))


class BinanceError(Exception):
    """An error Binance would answer with ``{"code": code, "msg": msg}`` and HTTP ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.data = data  # order/cancelReplace's per-half results ({"code", "msg", "data"})


def mandatory(name: str) -> BinanceError:
    """Binance's -1102 for a missing parameter."""
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def parse_decimal(params: dict[str, str], name: str) -> Decimal | None:
    """Parse an optional decimal parameter the way Binance validates it (-1100 on garbage)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        )
    return value


@dataclass(frozen=True)
class SymbolSpec:
    """A trading pair with the filters Binance returns in ``exchangeInfo``."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    max_notional: Decimal = Decimal("9000000")
    market_max_qty: Decimal = Decimal("100")
    min_trailing_above: int = 10
    max_trailing_above: int = 2000
    min_trailing_below: int = 10
    max_trailing_below: int = 2000

    def exchange_info(self) -> dict[str, Any]:
        """The ``symbols[]`` entry of ``GET /api/v3/exchangeInfo``."""
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "amendAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.min_price),
                    "maxPrice": fmt(self.max_price),
                    "tickSize": fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(self.min_qty),
                    "maxQty": fmt(self.max_qty),
                    "stepSize": fmt(self.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(D0),
                    "maxQty": fmt(self.market_max_qty),
                    "stepSize": fmt(D0),
                },
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": self.min_trailing_above,
                    "maxTrailingAboveDelta": self.max_trailing_above,
                    "minTrailingBelowDelta": self.min_trailing_below,
                    "maxTrailingBelowDelta": self.max_trailing_below,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": fmt(self.max_notional),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": STP_MODE,
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
        }


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec(
        "BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("9000"), Decimal("5")
    ),
    SymbolSpec(
        "ETHUSDT",
        "ETH",
        "USDT",
        Decimal("0.01"),
        Decimal("0.0001"),
        Decimal("0.0001"),
        Decimal("9000"),
        Decimal("5"),
        market_max_qty=Decimal("1000"),
    ),
    SymbolSpec(
        "BNBUSDT",
        "BNB",
        "USDT",
        Decimal("0.01"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("9000"),
        Decimal("5"),
        market_max_qty=Decimal("5000"),
    ),
)
# (mid price, level spacing, quantity per level) for the seeded default books.
DEFAULT_BOOK_SEEDS: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "BTCUSDT": (Decimal("60000"), Decimal("10"), Decimal("1")),
    "ETHUSDT": (Decimal("3000"), Decimal("1"), Decimal("10")),
    "BNBUSDT": (Decimal("600"), Decimal("0.1"), Decimal("50")),
}


@dataclass
class Account:
    """A spot account: credentials plus free/locked balances per asset."""

    api_key: str
    secret: str
    uid: int
    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)
    update_time: int = 0
    order_times: list[int] = field(default_factory=list)

    def assets(self) -> list[str]:
        """All assets the account has ever held."""
        return sorted(set(self.free) | set(self.locked))

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from free to locked, or raise -2010 insufficient balance."""
        if amount <= 0:
            return
        if self.free.get(asset, D0) < amount:
            raise BinanceError(-2010, INSUFFICIENT_BALANCE)
        self.free[asset] = self.free.get(asset, D0) - amount
        self.locked[asset] = self.locked.get(asset, D0) + amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from locked back to free."""
        if amount <= 0:
            return
        self.locked[asset] = self.locked.get(asset, D0) - amount
        self.free[asset] = self.free.get(asset, D0) + amount


@dataclass
class Fill:
    """One private trade of an order (``fills[]`` / ``myTrades`` row)."""

    trade_id: int
    order_id: int
    order_list_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def full_json(self) -> dict[str, Any]:
        """The entry in a FULL order response's ``fills`` array."""
        return {
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }

    def my_trade_json(self) -> dict[str, Any]:
        """The ``GET /api/v3/myTrades`` row."""
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.quote_qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


@dataclass
class PublicTrade:
    """A printed public trade (``/trades`` row, ``@trade`` event)."""

    trade_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    time: int
    buyer_is_maker: bool
    taker_order_id: int = -1

    def rest_json(self) -> dict[str, Any]:
        """The ``GET /api/v3/trades`` row."""
        return {
            "id": self.trade_id,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.price * self.qty),
            "time": self.time,
            "isBuyerMaker": self.buyer_is_maker,
            "isBestMatch": True,
        }

    def agg_json(self) -> dict[str, Any]:
        """The ``GET /api/v3/aggTrades`` row (one aggregate per trade here)."""
        return {
            "a": self.trade_id,
            "p": fmt(self.price),
            "q": fmt(self.qty),
            "f": self.trade_id,
            "l": self.trade_id,
            "T": self.time,
            "m": self.buyer_is_maker,
            "M": True,
        }


@dataclass
class Order:
    """A spot order and its full lifecycle state."""

    symbol: str
    order_id: int
    client_order_id: str
    api_key: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    stop_price: Decimal
    orig_quote_qty: Decimal
    time: int
    update_time: int
    working_time: int
    order_list_id: int = -1
    executed_qty: Decimal = D0
    cum_quote: Decimal = D0
    status: str = "NEW"
    triggered: bool = False
    # Trailing stops (faqs/trailing-stop-faq.md): the delta in BIPS, whether tracking has started (at once without a
    # stopPrice, else once the stopPrice condition is met) and the best price since then.
    trailing_delta: int = 0
    trail_tracking: bool = False
    trail_extreme: Decimal = D0
    lock_asset: str = ""
    lock_amount: Decimal = D0
    fills: list[Fill] = field(default_factory=list)
    placement_fills: list[Fill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """NEW or PARTIALLY_FILLED."""
        return self.status in OPEN_STATUSES

    @property
    def is_stop(self) -> bool:
        """A stop/take-profit order (triggered or not)."""
        return self.type in STOP_TYPES

    @property
    def is_working(self) -> bool:
        """On the book: open and not a dormant stop."""
        return self.is_open and (not self.is_stop or self.triggered)

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet executed (for quoteOrderQty MARKET orders: unknown, so 0)."""
        return self.orig_qty - self.executed_qty

    def base_json(self) -> dict[str, Any]:
        """Fields shared by order responses."""
        data: dict[str, Any] = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
        }
        if self.is_stop:
            data["stopPrice"] = fmt(self.stop_price)
        if self.trailing_delta:
            data["trailingDelta"] = self.trailing_delta
        return data

    def query_json(self) -> dict[str, Any]:
        """``GET /api/v3/order`` / ``openOrders`` / ``allOrders`` shape."""
        data = self.base_json()
        data.setdefault("stopPrice", fmt(self.stop_price))
        data.update(
            {
                "icebergQty": fmt(D0),
                "time": self.time,
                "updateTime": self.update_time,
                "isWorking": not self.is_stop or self.triggered,
                "workingTime": self.working_time,
                "selfTradePreventionMode": STP_MODE,
            }
        )
        return data

    def new_order_json(self, resp_type: str) -> dict[str, Any]:
        """``POST /api/v3/order`` response for ACK / RESULT / FULL."""
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if resp_type == "ACK":
            return ack
        data = {**ack, **self.base_json()}
        data["workingTime"] = self.working_time
        data["selfTradePreventionMode"] = STP_MODE
        if resp_type == "FULL":
            data["fills"] = [f.full_json() for f in self.placement_fills]
        return data


@dataclass
class Market:
    """Per-symbol market state: the external book, last price and the public trade tape."""

    spec: SymbolSpec
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int = 1_000
    last_price: Decimal = D0
    open_price: Decimal = D0
    trades: list[PublicTrade] = field(default_factory=list)

    def sorted_bids(self) -> list[tuple[Decimal, Decimal]]:
        """Bids, best (highest) first."""
        return sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)

    def sorted_asks(self) -> list[tuple[Decimal, Decimal]]:
        """Asks, best (lowest) first."""
        return sorted(self.asks.items(), key=lambda kv: kv[0])
