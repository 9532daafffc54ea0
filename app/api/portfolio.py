"""/api/portfolio: an account's equity curve and its performance per symbol."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import CurrentUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES
from app.api.schemas_records import EquityCurve, Performance

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"], responses=ERROR_RESPONSES)

AccountId = Annotated[str | None, Query(max_length=40)]


@router.get("/equity")
async def equity_curve(
    user: CurrentUser, services: ServicesDep, account_id: AccountId = None, interval: Literal["1m", "1h", "1d"] = "1h"
) -> EquityCurve:
    """The account's value in USDT: the last snapshot of each interval (1m: last 24 h, 1h: 30 days, 1d: 365
    days), oldest first, and its value now."""
    return EquityCurve(**await services.history.equity_curve(user.id, account_id, interval))


@router.get("/performance")
async def performance(user: CurrentUser, services: ServicesDep, account_id: AccountId = None) -> Performance:
    """Realized PnL (since the last paper reset) and fees paid, per symbol and in total, valued in USDT."""
    return Performance(**await services.history.performance(user.id, account_id))
