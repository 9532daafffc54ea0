"""API tests talk HTTP to a plain FastAPI app carrying the real routes and services (no browser layer)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.api import mount_api
from app.services import Services


@pytest.fixture
async def running(services: Services) -> AsyncIterator[Services]:
    """The services with the execution engine running (the market feed stays off: tests move prices)."""
    await services.engine.start()
    yield services
    await services.engine.stop()


@pytest.fixture
def api_app(services: Services) -> FastAPI:
    app = FastAPI()
    app.state.services = services
    mount_api(app)
    return app


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
