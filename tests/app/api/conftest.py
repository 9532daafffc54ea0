"""API tests talk HTTP to a plain FastAPI app carrying the real routes and services (no browser layer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from app.api import mount_api
from app.api.server_options import uvicorn_options
from app.config import Settings
from app.services import Services
from tests.factories import wait_for


@pytest.fixture
async def running(services: Services) -> AsyncIterator[Services]:
    """The services with the execution engine running (the market feed stays off: tests move prices)."""
    await services.engine.start()
    yield services
    await services.engine.stop()


@pytest.fixture(scope="session")
def _routes() -> FastAPI:
    """One app with every route for the whole session: FastAPI prepares a route (its dependencies, its response
    model) on an app's first request, ~0.1 s for all of them, which a new app per test paid every time. Requests
    reach the services through `app.state`, set per test; no test changes the app itself."""
    app = FastAPI()
    mount_api(app)
    return app


@pytest.fixture
def api_app(_routes: FastAPI, services: Services) -> FastAPI:
    _routes.state.services = services
    return _routes


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


ClientAt = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_at(api_app: FastAPI) -> ClientAt:
    """An HTTP client whose requests come from the given client address (throttles and allowed addresses)."""

    def make(address: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=api_app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test")

    return make


@asynccontextmanager
async def serve(api_app: FastAPI, settings: Settings) -> AsyncIterator[str]:
    """The API on a real uvicorn with the options main.py passes through ui.run; yields host:port."""
    options = uvicorn_options(settings)
    config = uvicorn.Config(
        api_app, host="127.0.0.1", port=0, ws="wsproto", log_level="warning", lifespan="off", **options
    )
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    await wait_for(lambda: instance.started, what="uvicorn to start")
    try:
        yield f"127.0.0.1:{instance.servers[0].sockets[0].getsockname()[1]}"
    finally:
        instance.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server(api_app: FastAPI, services: Services) -> AsyncIterator[str]:
    """host:port of the API on a real uvicorn (WebSocket tests)."""
    async with serve(api_app, services.settings) as address:
        yield address


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        yield client
