"""The execution core's front: the explicit venue router, the supervised paper task and /health's view of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.api import mount_api
from app.execution.commands import SubmitOrder
from app.services import Services
from tests.factories import wait_for


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.services = services
    mount_api(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def execution_health(client: httpx.AsyncClient) -> tuple[str, str]:
    body = (await client.get("/health")).json()
    return body["execution"], body["status"]


def test_a_venue_without_an_executor_is_an_error_not_a_default(services: Services) -> None:
    with pytest.raises(LookupError):
        services.engine.submit(SubmitOrder("o1", "a1", "kraken"))  # type: ignore[arg-type]


@pytest.mark.python_only
async def test_health_tells_whether_execution_runs_and_a_crashed_task_is_restarted(
    services: Services, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await execution_health(client) == ("down", "degraded")  # not started
    executor = services.engine.paper_executor
    run = executor.run
    crashes = []

    async def crash_once() -> None:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("boom")
        await run()

    monkeypatch.setattr(executor, "run", crash_once)
    monkeypatch.setattr("app.execution.core.RESTART_DELAY", 0.01)
    await services.engine.start()
    await wait_for(lambda: bool(crashes), what="the crash")
    await asyncio.sleep(0.05)
    assert await execution_health(client) == ("ok", "ok")  # supervised: running again
    await asyncio.wait_for(services.engine.drain(), 5)
    await services.engine.stop()
    assert await execution_health(client) == ("down", "degraded")
