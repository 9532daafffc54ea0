"""Request and response schemas of the HTTP API (separate from the tables)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
