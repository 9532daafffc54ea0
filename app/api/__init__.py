"""The HTTP + WebSocket API (FastAPI routers) mounted on NiceGUI's app. Both doors call the same services."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import (
    accounts,
    activity,
    alerts,
    api_keys,
    auth,
    fast_lane,
    health,
    market,
    order_lane,
    portfolio,
    trading,
    webhooks,
    ws,
)
from app.api.errors import BodySizeLimit, RefuseNulInUrl, install_error_handlers


def mount_api(app: FastAPI, *, with_order_lane: bool = True) -> None:
    """Add every API route, the error mapping, the body-size limit and the URL's NUL check to `app`.
    `with_order_lane=False` serves order placement through its FastAPI route only (tests compare the two; benches
    measure the difference)."""
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RefuseNulInUrl)
    lanes = {(order_lane.METHOD, order_lane.PATH): order_lane.place_order} if with_order_lane else {}
    fast_lane.install(app, lanes)
    # FastAPI wraps the app's lifespan in one more layer for every router it includes, and NiceGUI's app object
    # outlives a start (the UI tests start main.py on it once per test): the layers piled up until a start hit
    # Python's recursion limit. These routers have no lifespan of their own, so the app's stays as it was.
    lifespan = app.router.lifespan_context
    # Busiest first: FastAPI matches a request by trying the routes in order, each included router's one by one
    # whatever its prefix (~1-2 µs a route); a read of /api/trading after five other routers paid ~60 µs of CPU
    # for it (bench/reads.py). No two routers' paths overlap, so the order changes nothing else.
    for module in (trading, accounts, market, portfolio, health, auth, alerts, api_keys, activity, webhooks, ws):
        app.include_router(module.router)
    app.router.lifespan_context = lifespan
