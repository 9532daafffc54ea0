"""/api/alerts: price alerts ("tell me when BTCUSDT crosses 95000"); one firing is an ALERT event on /ws."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import CurrentUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES, AlertCreate, AlertPublic

router = APIRouter(prefix="/api/alerts", tags=["alerts"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_alert(body: AlertCreate, user: CurrentUser, services: ServicesDep) -> AlertPublic:
    """422 UNKNOWN_SYMBOL, a price off the tick grid, at most 100 active alerts per user; without `direction`
    it is taken from the last price (422 NO_MARKET_DATA when there is none yet)."""
    created = await services.alerts.create(user.id, body.symbol, body.price, body.direction)
    return AlertPublic(**created)


@router.get("")
async def list_alerts(user: CurrentUser, services: ServicesDep) -> list[AlertPublic]:
    """The caller's alerts, newest first, active (`triggered_at` null) and fired."""
    return [AlertPublic(**alert) for alert in await services.alerts.list(user.id)]


@router.delete("/{alert_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_alert(alert_id: str, user: CurrentUser, services: ServicesDep) -> Response:
    """404 ALERT_NOT_FOUND when it is not one of the caller's."""
    await services.alerts.delete(user.id, alert_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
