"""API requests skip the page middleware; pages keep it; the API's own body-size limit still applies."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from app.api import fast_lane
from app.api.errors import BodySizeLimit


class TagPages(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-page-middleware"] = "yes"
        return response


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, limit=10)
    fast_lane.install(app)
    app.add_middleware(TagPages)  # added after install, like NiceGUI's middleware in ui.run

    @app.post("/api/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/page")
    async def page() -> dict[str, str]:
        return {"page": "ok"}

    return app


async def test_api_requests_skip_page_middleware_and_pages_keep_it() -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        api = await client.post("/api/echo", content=b"12345")
        page = await client.get("/page")
        too_big = await client.post("/api/echo", content=b"x" * 11)
    assert api.json() == {"size": 5} and "x-page-middleware" not in api.headers
    assert page.json() == {"page": "ok"} and page.headers["x-page-middleware"] == "yes"
    assert too_big.status_code == 413


def test_installing_twice_wraps_the_original_once() -> None:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, limit=10)
    builds = 0
    original = app.build_middleware_stack

    def counting_build():  # type: ignore[no-untyped-def]
        nonlocal builds
        builds += 1
        return original()

    app.build_middleware_stack = counting_build  # type: ignore[method-assign]
    for _ in range(5):  # as when NiceGUI's test fixture runs main.py once per test
        fast_lane.install(app)
    app.build_middleware_stack()
    assert builds == 2  # the full stack and the API stack, not 2**5
