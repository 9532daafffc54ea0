"""A fast lane for API requests through the middleware stack.

NiceGUI's app carries page middleware (sessions and request tracking for `app.storage.user`, cache control,
prefix redirects, gzip, our login redirect); most of it is `BaseHTTPMiddleware`, which costs several times what
a small JSON request itself costs. API calls authenticate with bearer tokens and need none of it, so they take a
second stack that Starlette builds the same way with only the API's own middleware (the body-size limit, NUL
characters refused in the URL);
pages, NiceGUI's routes and the lifespan keep the full stack.

A lane may also take one route off the API stack entirely (`lanes`: method and path -> a handler that gets the
API stack to hand the request to when it declines it); app/api/order_lane.py serves order placement this way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import API_MIDDLEWARE, is_api_path

_ORIGINAL_BUILD = "_tradewind_original_build_middleware_stack"

Lane = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]


class ApiFastLane:
    def __init__(self, api: ASGIApp, full: ASGIApp, lanes: Mapping[tuple[str, str], Lane] | None = None) -> None:
        self.api = api
        self.full = full
        self.lanes = dict(lanes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and is_api_path(scope["path"]):
            lane = self.lanes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
            if lane is not None:
                await lane(scope, receive, send, self.api)
            else:
                await self.api(scope, receive, send)
        else:
            await self.full(scope, receive, send)


def install(app: FastAPI, lanes: Mapping[tuple[str, str], Lane] | None = None) -> None:
    """Make `app` build both stacks (Starlette builds its stack lazily, after every middleware was added).

    Idempotent: NiceGUI's test fixture runs main.py again for every test on the same app object, and wrapping the
    previous wrapper each time would build the stacks 2^n times.
    """
    build_full: Callable[[], ASGIApp] = getattr(app, _ORIGINAL_BUILD, app.build_middleware_stack)
    setattr(app, _ORIGINAL_BUILD, build_full)

    def build_both() -> ASGIApp:
        full = build_full()
        every = app.user_middleware
        app.user_middleware = [m for m in every if m.cls in API_MIDDLEWARE]  # type: ignore[comparison-overlap]
        try:
            api = build_full()
        finally:
            app.user_middleware = every
        return ApiFastLane(api, full, lanes)

    app.build_middleware_stack = build_both  # type: ignore[method-assign]
