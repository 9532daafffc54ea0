"""Request and response schemas of the HTTP API (separate from the tables)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from app.api.strict_body import StrictBody


class Credentials(StrictBody):
    """Register: a valid email and a password of 8-128 characters. Login: any password (a wrong one is a 401)."""

    email: str = Field(min_length=1, max_length=254, examples=["trader@example.com"])
    password: str = Field(min_length=1, max_length=128, examples=["correct horse battery"])


class UserPublic(BaseModel):
    id: str
    email: str


class AuthResponse(BaseModel):
    token: str
    user: UserPublic


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    db: Literal["ok", "error"]
    market_data: Literal["ok", "stale"]
    execution: Literal["ok", "down"]
    version: str
    replica: str | None = Field(default=None, description="CLUSTER mode: this replica's id (its lease owner name).")
    partitions: list[int] | None = Field(default=None, description="CLUSTER mode: the partitions this replica holds.")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


_ERROR_MEANINGS = {
    400: "Malformed JSON or a missing body (MALFORMED_JSON)",
    401: "Missing, invalid or expired token, or wrong credentials",
    403: "Authenticated but not allowed",
    404: "Unknown, or not the caller's",
    409: "The object's state forbids the request",
    413: "The request body exceeds 1 MB (PAYLOAD_TOO_LARGE)",
    422: "Validation failed; `field` names the offending field",
    429: "Throttled; retry after `Retry-After` seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": meaning} | ({"headers": _RETRY_AFTER} if status == 429 else {})
    for status, meaning in _ERROR_MEANINGS.items()
}
"""Every error status any API route can answer, all in the one error shape (declared on every router)."""


TradingStateName = Literal["ACTIVE", "REDUCE_ONLY", "HALTED"]


class AccountPublic(BaseModel):
    id: str
    venue: str
    label: str
    created_at: int
    api_key_hint: str | None
    needs_new_key: bool = Field(
        False, description="The exchange refused the stored API key: nothing is sent until a new key is added."
    )
    trading_state: TradingStateName = Field(
        "ACTIVE", description="The kill switch: ACTIVE, REDUCE_ONLY (only orders that shrink a position) or HALTED."
    )


class AccountCreate(StrictBody):
    """A Binance testnet key to add. The secret is a SecretStr so no repr or log of the body shows it."""

    venue: Literal["binance-testnet"]
    # Printable ASCII without inner spaces; surrounding whitespace (a pasted key) is trimmed.
    api_key: str = Field(min_length=1, max_length=256, pattern=r"^\s*[!-~]+\s*$")
    api_secret: SecretStr = Field(min_length=1, max_length=4096)
    label: str | None = Field(default=None, max_length=64)


# Money and quantities: a plain decimal string (no sign, no exponent, at most 20 integer and 18 fractional digits)
# or a JSON number below 1e20. The patterns and bounds are enforced here, so the schema states exactly what passes
# this gate; the service then checks the symbol's grid, minimums and the order's logic.
DECIMAL_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,18})?$"
_DecimalString = Annotated[str, Field(pattern=DECIMAL_PATTERN)]
PositiveDecimal = Annotated[
    _DecimalString | Annotated[int, Field(gt=0, lt=10**20)] | Annotated[float, Field(gt=0, lt=1e20)],
    Field(description='A decimal string such as "0.01" (preferred) or a JSON number; greater than 0'),
]


def _upper(value: object) -> object:
    """Enums are matched case-insensitively ("buy" is BUY); the schema lists the canonical spelling. ASCII only:
    Unicode case mapping would take "ſell" for SELL and "ıoc" for IOC."""
    return value.upper() if isinstance(value, str) and value.isascii() else value


TradingStateIn = Annotated[Literal["ACTIVE", "REDUCE_ONLY", "HALTED"], BeforeValidator(_upper)]
SideIn = Annotated[Literal["BUY", "SELL"], BeforeValidator(_upper)]
OrderTypeIn = Annotated[
    Literal[
        "MARKET",
        "LIMIT",
        "LIMIT_MAKER",
        "STOP_MARKET",
        "STOP_LIMIT",
        "TAKE_PROFIT_MARKET",
        "TAKE_PROFIT_LIMIT",
        "TRAILING_STOP_MARKET",
    ],
    BeforeValidator(_upper),
]
TimeInForceIn = Annotated[Literal["GTC", "IOC", "FOK"], BeforeValidator(_upper)]
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"


class OrderCreate(StrictBody):
    """Money fields take a decimal string or a JSON number; the service parses them into Decimal.

    `quantity` (base asset) or, for MARKET only, `quote_quantity`; `price` for the *LIMIT types only; `stop_price`
    for STOP_* and TAKE_PROFIT_* only; `time_in_force` for LIMIT, STOP_LIMIT, TAKE_PROFIT_LIMIT only (default GTC;
    LIMIT_MAKER, post-only, takes none); `take_profit_price` and
    `stop_loss_price` together or not at all. `symbol` also takes `BTC/USDT` or lower case."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}]}
    )

    symbol: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9/-]+$", examples=["BTCUSDT"])
    side: SideIn
    type: OrderTypeIn
    quantity: PositiveDecimal | None = None
    quote_quantity: PositiveDecimal | None = None
    price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    time_in_force: TimeInForceIn | None = None
    take_profit_price: PositiveDecimal | None = None
    stop_loss_price: PositiveDecimal | None = None
    trailing_delta_bps: int | None = Field(
        default=None, description="TRAILING_STOP_MARKET only: the retrace in basis points (10-2000) that fires it"
    )
    account_id: str | None = Field(default=None, min_length=1, max_length=40)
    client_order_id: str | None = Field(default=None, pattern=CLIENT_ORDER_ID_PATTERN)


class OrderReplace(StrictBody):
    """A modify/replace: the fields to change (at least one); the rest is kept from the order being replaced.
    `quantity` is the replacement's whole quantity (default: what the old order had left to fill)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"price": "59000"}]})

    price: PositiveDecimal | None = None
    quantity: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    trailing_delta_bps: int | None = None
    client_order_id: str | None = Field(default=None, pattern=CLIENT_ORDER_ID_PATTERN)


class OcoCreate(StrictBody):
    """A stand-alone OCO for an existing position: a take-profit LIMIT at `price` and a stop-loss at `stop_price`
    (a market order once triggered, or a limit at `stop_limit_price`), same side and quantity."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01", "price": "65000", "stop_price": "58000"}
            ]
        }
    )

    symbol: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9/-]+$", examples=["BTCUSDT"])
    side: SideIn
    quantity: PositiveDecimal
    price: PositiveDecimal
    stop_price: PositiveDecimal
    stop_limit_price: PositiveDecimal | None = None
    account_id: str | None = Field(default=None, min_length=1, max_length=40)


class OrderPublic(BaseModel):
    id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str | None
    quantity: str | None
    quote_quantity: str | None
    price: str | None
    stop_price: str | None
    trailing_delta_bps: int | None
    status: str
    filled_quantity: str
    avg_fill_price: str | None
    fee: str
    fee_asset: str | None
    reject_reason: str | None
    parent_id: str | None
    oco_group: str | None
    replaces: str | None
    take_profit_price: str | None
    stop_loss_price: str | None
    created_at: int
    updated_at: int


class FillPublic(BaseModel):
    id: str
    order_id: str
    account_id: str
    symbol: str
    side: str
    price: str
    quantity: str
    fee: str
    fee_asset: str
    liquidity: str
    ts: int


class OcoPublic(BaseModel):
    oco_group: str
    orders: list[OrderPublic]  # take-profit leg first, then the stop-loss leg


class OrderWithFills(OrderPublic):
    fills: list[FillPublic]


class CancelAllResult(BaseModel):
    canceled: int


class BalancePublic(BaseModel):
    asset: str
    free: str
    locked: str


class PositionPublic(BaseModel):
    symbol: str
    quantity: str
    avg_entry_price: str | None
    market_price: str | None
    market_value: str | None
    unrealized_pnl: str | None
    realized_pnl: str


AssetCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,16}$")]
# A paper reset's amount per asset: below 10,000,000,000 (app/portfolio_service.py MAX_RESET_AMOUNT).
ResetAmount = Annotated[
    Annotated[str, Field(pattern=r"^[0-9]{1,10}(\.[0-9]{1,18})?$")]
    | Annotated[int, Field(ge=0, lt=10**10)]
    | Annotated[float, Field(ge=0, lt=1e10)],
    Field(description="A decimal string or JSON number, at least 0 and below 10,000,000,000"),
]


StartingBalances = Annotated[
    dict[AssetCode, ResetAmount],
    Field(max_length=50, json_schema_extra={"additionalProperties": False}, examples=[{"USDT": "10000"}]),
]


class ResetRequest(StrictBody):
    """Omit `balances` (or the body) for PAPER_BALANCES."""

    balances: StartingBalances | None = None


class PaperAccountCreate(StrictBody):
    """Another paper account: a label and, optionally, its starting balances (default PAPER_BALANCES)."""

    venue: Literal["paper"]
    label: str = Field(min_length=1, max_length=64, examples=["Strategy A"])
    balances: StartingBalances | None = None


class AccountRename(StrictBody):
    label: str = Field(min_length=1, max_length=64, examples=["Strategy B"])


class SymbolPublic(BaseModel):
    symbol: str
    base: str
    quote: str
    tick_size: str
    step_size: str
    min_qty: str
    min_notional: str


class TickerPublic(BaseModel):
    symbol: str
    price: str
    bid: str
    ask: str
    open_24h: str
    high_24h: str
    low_24h: str
    volume_24h: str
    change_24h_pct: str
    ts: int


class CandlePublic(BaseModel):
    t: int
    o: str
    h: str
    l: str  # noqa: E741
    c: str
    v: str


# One book level: [price, quantity] (a list of two decimal strings, not a tuple: plain `items` in the schema).
Level = Annotated[list[str], Field(min_length=2, max_length=2)]


class DepthPublic(BaseModel):
    symbol: str
    bids: list[Level]
    asks: list[Level]
    ts: int


class TradePublic(BaseModel):
    price: str
    qty: str
    side: str
    ts: int


AlertDirectionIn = Annotated[Literal["ABOVE", "BELOW"], BeforeValidator(_upper)]


class AlertCreate(StrictBody):
    """`direction` is optional: by default ABOVE when the price is at or above the last price, else BELOW."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"symbol": "BTCUSDT", "price": "95000"}]})

    symbol: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9/-]+$", examples=["BTCUSDT"])
    price: PositiveDecimal
    direction: AlertDirectionIn | None = None


class AlertPublic(BaseModel):
    id: str
    symbol: str
    price: str
    direction: Literal["ABOVE", "BELOW"]
    created_at: int
    triggered_at: int | None


class TradingStateUpdate(StrictBody):
    """The account's new trading state."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"state": "HALTED"}]})

    state: TradingStateIn


class TradingStateChanged(BaseModel):
    account_id: str
    state: TradingStateName
    previous: TradingStateName
    canceled: int = Field(description="Open orders whose cancel was requested (HALTED only, else 0)")
