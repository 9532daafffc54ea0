"""Request and response schemas of the records API: the portfolio (equity curve, performance) and webhooks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.strict_body import StrictBody


class EquityPoint(BaseModel):
    t: int = Field(description="The interval's start, epoch ms")
    equity: str


class EquityCurve(BaseModel):
    account_id: str
    quote: str
    interval: Literal["1m", "1h", "1d"]
    equity: str = Field(description="The account's value now")
    points: list[EquityPoint]


class SymbolPerformance(BaseModel):
    symbol: str
    realized_pnl: str
    fees: str
    fees_complete: bool = Field(description="False when some fee was paid in an asset without a USDT price")


class Performance(BaseModel):
    account_id: str
    quote: str
    equity: str
    realized_pnl: str
    fees: str
    symbols: list[SymbolPerformance]


WebhookEventKind = Literal["fill", "rejection", "alert"]


class WebhookCreate(StrictBody):
    """A URL (http/https, at most 2048 characters, allowed by the server's SSRF guard) and the event kinds."""

    url: str = Field(
        description="http:// or https://, at most 2048 characters; its host must pass the server's SSRF guard",
        examples=["https://bot.example.com/tradewind"],
    )
    events: list[WebhookEventKind] = Field(min_length=1, max_length=3, examples=[["fill", "rejection"]])


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: int


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="The signing secret: shown only in this response. Store it now.")


class WebhookDeliveryPublic(BaseModel):
    id: str
    event_id: str | None
    event: str | None
    attempt: int
    outcome: Literal["DELIVERED", "FAILED", "REFUSED", "DROPPED"]
    status_code: int | None
    error: str | None
    duration_ms: int | None
    created_at: int
