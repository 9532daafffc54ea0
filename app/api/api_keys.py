"""/api/api-keys: bots' API keys. Every route needs a login token (an API key gets 403 LOGIN_REQUIRED)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from app.api.deps import ClientAddress, LoginUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES
from app.api.strict_body import StrictBody
from app.api_keys import MAX_ADDRESSES, MAX_LABEL, ApiKeyView

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"], responses=ERROR_RESPONSES)


class ApiKeyCreate(StrictBody):
    label: str = Field(min_length=1, max_length=MAX_LABEL, examples=["grid bot"])
    scopes: list[Literal["read", "trade"]] = Field(min_length=1, max_length=2, examples=[["read", "trade"]])
    allowed_addresses: list[str] = Field(
        default_factory=list,
        max_length=MAX_ADDRESSES,
        description="Client IP addresses or CIDR networks the key works from; empty: any address",
        examples=[["203.0.113.7", "10.0.0.0/8"]],
    )


class ApiKeyPublic(BaseModel):
    id: str
    label: str
    prefix: str = Field(description="The key's first 11 characters, to tell keys apart")
    scopes: list[str]
    allowed_addresses: list[str]
    created_at: int
    last_used_at: int | None = Field(description="Updated at most once a minute")


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")


def key_public(view: ApiKeyView) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=view.id,
        label=view.label,
        prefix=view.prefix,
        scopes=list(view.scopes),
        allowed_addresses=list(view.allowed_addresses),
        created_at=view.created_at,
        last_used_at=view.last_used_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: ApiKeyCreate, user: LoginUser, services: ServicesDep, address: ClientAddress
) -> ApiKeyCreated:
    """Create a key; the answer is the only time `key` is shown. 409 TOO_MANY_API_KEYS beyond 20 live keys,
    429 TOO_MANY_KEY_CHANGES beyond 10 creations per hour."""
    created = await services.api_keys.create(user.id, body.label, body.scopes, body.allowed_addresses, address)
    return ApiKeyCreated(**key_public(created.view).model_dump(), key=created.key)


@router.get("")
async def list_api_keys(user: LoginUser, services: ServicesDep) -> list[ApiKeyPublic]:
    """The caller's live keys, newest first (never the keys themselves)."""
    return [key_public(view) for view in await services.api_keys.list_for_user(user.id)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: str, user: LoginUser, services: ServicesDep, address: ClientAddress) -> Response:
    """Revoke a key at once: its next request gets 401 and its open sockets close with 1008. 404
    API_KEY_NOT_FOUND for a key that is not yours or already revoked."""
    await services.api_keys.revoke(user.id, key_id, address)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
