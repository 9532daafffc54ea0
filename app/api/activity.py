"""/api/activity: the caller's account actions (logins, password and key changes, paper resets), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import CurrentUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/api/activity", tags=["activity"], responses=ERROR_RESPONSES)


class ActivityPublic(BaseModel):
    id: int
    kind: str
    ts: int
    address: str | None
    detail: dict[str, str]


@router.get("")
async def list_activity(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Continue after this record id (the last one seen)")
    ] = None,
) -> list[ActivityPublic]:
    """Newest first; pass the last `id` of a page as `before` to get the next page."""
    rows = await services.activity.recent(user.id, limit, before)
    return [ActivityPublic(id=r.id, kind=r.kind, ts=r.ts, address=r.address, detail=r.detail) for r in rows]
