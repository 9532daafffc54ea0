"""/api/webhooks: where the server POSTs the caller's fills, rejections and fired alerts (docs/api.md)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import CurrentUser, LoginUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES
from app.api.schemas_records import WebhookCreate, WebhookCreated, WebhookDeliveryPublic, WebhookPublic
from app.webhooks.service import WebhookView

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)


def webhook_public(view: WebhookView) -> WebhookPublic:
    return WebhookPublic(id=view.id, url=view.url, events=list(view.events), created_at=view.created_at)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_webhook(body: WebhookCreate, user: LoginUser, services: ServicesDep) -> WebhookCreated:
    """Register a URL for event kinds. The answer carries the signing `secret`, shown this once. A URL the SSRF
    guard refuses (scheme, length, host not allowed, private address) gives 422 WEBHOOK_URL_REFUSED."""
    view, secret = await services.webhooks.create(user.id, body.url, list(body.events))
    return WebhookCreated(**webhook_public(view).model_dump(), secret=secret)


@router.get("")
async def list_webhooks(user: CurrentUser, services: ServicesDep) -> list[WebhookPublic]:
    """The caller's webhooks, oldest first (secrets are never returned again)."""
    return [webhook_public(view) for view in await services.webhooks.list_for_user(user.id)]


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: str, user: LoginUser, services: ServicesDep) -> Response:
    """Delete one of the caller's webhooks and its delivery records."""
    await services.webhooks.delete(user.id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: str,
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[WebhookDeliveryPublic]:
    """Recent delivery attempts, newest first (the newest 100 per webhook are kept)."""
    rows = await services.webhooks.deliveries(user.id, webhook_id, limit)
    return [WebhookDeliveryPublic.model_validate(asdict(row)) for row in rows]
