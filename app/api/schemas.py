"""Request and response schemas of the HTTP API (separate from the tables)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields and wrong types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Credentials(StrictBody):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=128)


class UserPublic(BaseModel):
    id: str
    email: str


class AuthResponse(BaseModel):
    token: str
    user: UserPublic


class Health(BaseModel):
    status: str
    db: str
    market_data: str
    version: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 422, 429)
}


class AccountPublic(BaseModel):
    id: str
    venue: str
    label: str
    created_at: int
    api_key_hint: str | None


class AccountCreate(StrictBody):
    """A Binance testnet key to add. The secret is a SecretStr so no repr or log of the body shows it."""

    venue: Literal["binance-testnet"]
    api_key: str = Field(min_length=1, max_length=256)
    api_secret: SecretStr = Field(min_length=1, max_length=4096)
    label: str | None = Field(default=None, max_length=64)


DecimalIn = str | int | float


class OrderCreate(StrictBody):
    """Money fields take a decimal string or a JSON number; the service parses them into Decimal."""

    symbol: str = Field(max_length=20)
    side: str = Field(max_length=8)
    type: str = Field(max_length=24)
    quantity: DecimalIn | None = None
    quote_quantity: DecimalIn | None = None
    price: DecimalIn | None = None
    stop_price: DecimalIn | None = None
    time_in_force: str | None = Field(default=None, max_length=8)
    take_profit_price: DecimalIn | None = None
    stop_loss_price: DecimalIn | None = None
    account_id: str | None = Field(default=None, max_length=40)
    client_order_id: str | None = Field(default=None, max_length=64)


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
    status: str
    filled_quantity: str
    avg_fill_price: str | None
    fee: str
    fee_asset: str | None
    reject_reason: str | None
    parent_id: str | None
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


class ResetRequest(StrictBody):
    balances: dict[str, DecimalIn] | None = None


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


class DepthPublic(BaseModel):
    symbol: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    ts: int


class TradePublic(BaseModel):
    price: str
    qty: str
    side: str
    ts: int
