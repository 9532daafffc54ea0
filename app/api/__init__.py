"""The HTTP + WebSocket API (FastAPI routers) mounted on NiceGUI's app. Both doors call the same services."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import accounts, auth, fast_lane, health, market, trading, webhooks, ws
from app.api.errors import BodySizeLimit, install_error_handlers


def mount_api(app: FastAPI) -> None:
    """Add every API route, the error mapping and the body-size limit to `app`."""
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    fast_lane.install(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(accounts.router)
    app.include_router(market.router)
    app.include_router(trading.router)
    app.include_router(webhooks.router)
    app.include_router(ws.router)
