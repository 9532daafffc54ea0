"""GET /health (no auth)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy import text

from app import __version__
from app.api.deps import ServicesDep
from app.api.schemas import Health

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/health")
async def health(services: ServicesDep) -> Health:
    """Liveness of the database and of the execution task, and freshness of market data."""
    try:
        await services.db.read(lambda s: s.execute(text("SELECT 1")).scalar_one())
        db = "ok"
    except Exception:  # the health check reports failures, it does not raise them
        log.exception("database health check failed")
        db = "error"
    execution = services.engine.status
    status = "ok" if db == "ok" and execution == "ok" else "degraded"
    cluster = services.cluster
    return Health(
        status=status,
        db=db,
        market_data=services.market_data_status(),
        execution=execution,
        version=__version__,
        replica=cluster.replica_id if cluster is not None else None,
        partitions=sorted(cluster.scope.leases) if cluster is not None else None,
    )
